/// One kernel parameter, passed by value the way the kernel's C++ signature declares it.
public enum KernelArgument: Sendable, Equatable {
    /// A device address (any `T*` parameter).
    case pointer(CUdeviceptr)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case float(Float)
    case double(Double)
    /// Raw bytes for a by-value struct parameter (a `CUtensorMap` is 128 bytes with 64-byte alignment).
    case bytes([UInt8], alignment: Int)

    /// Size and alignment the parameter has in the kernel's parameter buffer.
    var layout: (size: Int, alignment: Int) {
        switch self {
        case .pointer, .int64, .uint64, .double: (8, 8)
        case .int32, .uint32, .float: (4, 4)
        case let .bytes(bytes, alignment): (bytes.count, alignment)
        }
    }

    /// Writes the parameter's bytes at `destination`.
    func store(at destination: UnsafeMutableRawPointer) {
        switch self {
        case let .pointer(value): destination.storeBytes(of: value, as: CUdeviceptr.self)
        case let .int32(value): destination.storeBytes(of: value, as: Int32.self)
        case let .uint32(value): destination.storeBytes(of: value, as: UInt32.self)
        case let .int64(value): destination.storeBytes(of: value, as: Int64.self)
        case let .uint64(value): destination.storeBytes(of: value, as: UInt64.self)
        case let .float(value): destination.storeBytes(of: value, as: Float.self)
        case let .double(value): destination.storeBytes(of: value, as: Double.self)
        case let .bytes(bytes, _): bytes.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        }
    }
}

/// Kernel arguments boxed at stable, aligned addresses, with the array of pointers `cuLaunchKernel` reads.
struct KernelArgumentPack {
    /// Each argument's offset in the box.
    let offsets: [Int]
    let byteCount: Int
    let alignment: Int
    private let arguments: [KernelArgument]

    /// Lays `arguments` out one after another, each at a multiple of its alignment.
    /// - Throws: `CUDAError.invalidArgument` for a `.bytes` argument with an empty payload or an alignment that is
    ///   not a power of two.
    init(_ arguments: [KernelArgument]) throws {
        var offsets: [Int] = []
        var end = 0
        var alignment = 16
        for (index, argument) in arguments.enumerated() {
            let (size, align) = argument.layout
            guard size > 0, align > 0, align & (align - 1) == 0 else {
                throw CUDAError.invalidArgument(
                    context: "kernel argument \(index)", reason: "\(size) bytes with alignment \(align) (needs bytes and a power-of-two alignment)")
            }
            let offset = (end + align - 1) / align * align
            offsets.append(offset)
            end = offset + size
            alignment = max(alignment, align)
        }
        self.offsets = offsets
        byteCount = end
        self.alignment = alignment
        self.arguments = arguments
    }

    /// Calls `body` with the parameter pointer array (one pointer per argument, into a box valid during the call).
    func withParameterPointers<R>(_ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>) throws -> R) rethrows -> R {
        let box = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: alignment)
        defer { box.deallocate() }
        let pointers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(arguments.count, 1))
        defer { pointers.deallocate() }
        for (index, argument) in arguments.enumerated() {
            let slot = box + offsets[index]
            argument.store(at: slot)
            pointers[index] = slot
        }
        return try body(pointers)
    }
}
