import NunchakuCore

/// A TMA tensor map (`CUtensorMap`): 128 opaque bytes the driver encodes from a tensor's address, shape and strides
/// and a box shape. A kernel takes it by value (`const __grid_constant__` parameter) and copies boxes of the tensor
/// into shared memory with `cp.async.bulk.tensor`.
///
/// ```swift
/// let layout = try CUDATensorMapLayout(name: "key", elementType: .bfloat16, address: key.buffer.address,
///                                      dimensions: [128, 24, 4608, 1], strides: [256, 6144, 28_311_552],
///                                      box: [64, 1, 128, 1], swizzle: .bytes128)
/// let map = try context.encodeTensorMap(layout)   // pass map.argument to the launch
/// ```
public struct CUDATensorMap: Sendable, Equatable {
    /// `sizeof(CUtensorMap)`.
    public static let byteCount = 128
    /// `alignof(CUtensorMap)`: the driver writes the map there, and the kernel parameter has this alignment.
    public static let alignment = 64

    /// The encoded map, opaque.
    public let bytes: [UInt8]

    /// The map as a by-value kernel parameter.
    public var argument: KernelArgument { .bytes(bytes, alignment: Self.alignment) }
}

/// A tiled tensor map's description, checked against `cuTensorMapEncodeTiled`'s documented requirements so that a bad
/// one fails with a message naming the tensor and the value (the driver only answers `CUDA_ERROR_INVALID_VALUE`).
///
/// Tiled mode without interleaving; every element stride is 1; elements outside the tensor read as zeros.
public struct CUDATensorMapLayout: Sendable, Equatable {
    /// `CUtensorMapDataType` (the element types the runtime uses).
    public enum ElementType: Int32, Sendable {
        case uint8 = 0, uint16 = 1, uint32 = 2, int32 = 3, float16 = 6, float32 = 7, bfloat16 = 9

        /// Bytes per element.
        public var byteCount: Int {
            switch self {
            case .uint8: 1
            case .uint16, .float16, .bfloat16: 2
            case .uint32, .int32, .float32: 4
            }
        }
    }

    /// `CUtensorMapSwizzle`: how 16-byte chunks of a box row are permuted in shared memory.
    public enum Swizzle: Int32, Sendable {
        case none = 0, bytes32 = 1, bytes64 = 2, bytes128 = 3

        /// The span the permutation works in: a box row may not be longer (none: no limit).
        public var spanBytes: Int? {
            switch self {
            case .none: nil
            case .bytes32: 32
            case .bytes64: 64
            case .bytes128: 128
            }
        }
    }

    /// `CUtensorMapL2promotion`: the granularity at which L2 fetches the tensor from device memory.
    public enum L2Promotion: Int32, Sendable {
        case none = 0, bytes64 = 1, bytes128 = 2, bytes256 = 3
    }

    /// The largest rank and box edge the copy engine handles.
    public static let maximumRank = 5
    public static let maximumBoxEdge = 256

    /// The tensor's name in error messages.
    public let name: String
    public let elementType: ElementType
    /// The device address of element (0, 0, …).
    public let address: CUdeviceptr
    /// Elements per dimension, innermost (contiguous) first.
    public let dimensions: [Int]
    /// Bytes between consecutive indices of dimensions 1… (dimension 0 is contiguous): `dimensions.count − 1` values.
    public let strides: [Int]
    /// The box one copy moves, elements per dimension, innermost first.
    public let box: [Int]
    public let swizzle: Swizzle
    public let l2Promotion: L2Promotion

    /// Checks the description.
    /// - Throws: `CUDAError.invalidArgument` naming the tensor and the first value the driver would refuse: a rank
    ///   outside 1…5 or arrays of different lengths, an address not 16-byte aligned, a dimension outside 1…2³², a
    ///   stride not a multiple of 16, not below 2⁴⁰ or smaller than the dimensions inside it span, a box edge outside
    ///   1…256, or a box row that is not a multiple of 16 bytes or longer than the swizzle span.
    public init(name: String, elementType: ElementType, address: CUdeviceptr, dimensions: [Int], strides: [Int], box: [Int],
                swizzle: Swizzle, l2Promotion: L2Promotion = .bytes256) throws {
        func refuse(_ reason: String) -> CUDAError { CUDAError.invalidArgument(context: "tensor map of \(name)", reason: reason) }
        let rank = dimensions.count
        guard (1...Self.maximumRank).contains(rank) else { throw refuse("rank \(rank) is outside 1…\(Self.maximumRank)") }
        guard strides.count == rank - 1, box.count == rank else {
            throw refuse("\(rank) dimensions need \(rank - 1) strides and \(rank) box edges, got \(strides.count) and \(box.count)")
        }
        guard address % 16 == 0 else { throw refuse("address 0x\(String(address, radix: 16)) is not 16-byte aligned") }
        for (index, extent) in dimensions.enumerated() where !(1...(1 << 32)).contains(extent) {
            throw refuse("dimension \(index) has \(extent) elements (needs 1…2^32)")
        }
        // Each stride must cover the dimensions inside it: rows of dimension 0, then whole slices.
        var spanned = dimensions[0] * elementType.byteCount
        for (index, stride) in strides.enumerated() {
            guard stride % 16 == 0, stride < 1 << 40 else {
                throw refuse("stride \(index + 1) of \(stride) bytes is not a multiple of 16 below 2^40")
            }
            guard stride >= spanned else {
                throw refuse("stride \(index + 1) of \(stride) bytes is smaller than the \(spanned) bytes the inner dimensions span")
            }
            spanned = stride * dimensions[index + 1]
        }
        for (index, edge) in box.enumerated() where !(1...Self.maximumBoxEdge).contains(edge) {
            throw refuse("box edge \(index) of \(edge) elements is outside 1…\(Self.maximumBoxEdge)")
        }
        let rowBytes = box[0] * elementType.byteCount
        guard rowBytes % 16 == 0 else { throw refuse("a box row of \(rowBytes) bytes is not a multiple of 16") }
        if let span = swizzle.spanBytes, rowBytes > span {
            throw refuse("a box row of \(rowBytes) bytes is longer than the \(span)-byte swizzle span")
        }
        self.name = name
        self.elementType = elementType
        self.address = address
        self.dimensions = dimensions
        self.strides = strides
        self.box = box
        self.swizzle = swizzle
        self.l2Promotion = l2Promotion
    }

    /// Bytes one copy of the box writes to shared memory (elements outside the tensor included, as zeros).
    public var boxBytes: Int { box.reduce(elementType.byteCount, *) }
}

extension CUDAContext {
    /// Encodes `layout` with the driver's `cuTensorMapEncodeTiled`.
    /// - Throws: `NunchakuError.unsupported` when the driver has no tensor maps (older than CUDA 12);
    ///   `CUDAError.driverCall` when the driver refuses the layout.
    public func encodeTensorMap(_ layout: CUDATensorMapLayout) throws -> CUDATensorMap {
        guard let encode = driver.api.cuTensorMapEncodeTiled else {
            throw NunchakuError.unsupported(context: "tensor map of \(layout.name)",
                                            reason: "the CUDA driver has no cuTensorMapEncodeTiled (it needs a CUDA 12 or newer driver)")
        }
        let map = UnsafeMutableRawPointer.allocate(byteCount: CUDATensorMap.byteCount, alignment: CUDATensorMap.alignment)
        defer { map.deallocate() }
        let dimensions = layout.dimensions.map { UInt64($0) }
        let strides = layout.strides.map { UInt64($0) }
        let box = layout.box.map { UInt32($0) }
        let elementStrides = [UInt32](repeating: 1, count: layout.box.count)
        try handle.call("cuTensorMapEncodeTiled(\(layout.name), dimensions \(layout.dimensions), box \(layout.box))") { _ in
            encode(map, layout.elementType.rawValue, UInt32(layout.dimensions.count), UnsafeMutableRawPointer(bitPattern: UInt(layout.address)),
                   dimensions, strides, box, elementStrides, CUDATensorMapEncoding.noInterleave, layout.swizzle.rawValue,
                   layout.l2Promotion.rawValue, CUDATensorMapEncoding.zeroFill)
        }
        return CUDATensorMap(bytes: Array(UnsafeRawBufferPointer(start: map, count: CUDATensorMap.byteCount)))
    }
}

/// The fixed `cuTensorMapEncodeTiled` arguments the runtime uses.
enum CUDATensorMapEncoding {
    /// `CU_TENSOR_MAP_INTERLEAVE_NONE`.
    static let noInterleave: Int32 = 0
    /// `CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE`: elements outside the tensor read as zeros.
    static let zeroFill: Int32 = 0
}
