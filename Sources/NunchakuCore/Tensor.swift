/// A host tensor: a dtype, a shape, element strides and a view into shared storage.
///
/// Tensors are values. Copies share storage until one of them is mutated (copy on write), and
/// storage may be a zero-copy view into a memory-mapped checkpoint. Packed 4-bit dtypes are
/// always contiguous (two elements per byte, the even element in the low nibble).
public struct Tensor: Sendable {
    /// The element type.
    public let dtype: DType
    /// The size of each dimension, outermost first.
    public private(set) var shape: [Int]
    /// The distance in elements between neighbours along each dimension.
    public private(set) var strides: [Int]
    /// The bytes this tensor views.
    public private(set) var storage: TensorStorage
    /// Where element 0 lies inside `storage`, in bytes.
    public private(set) var byteOffset: Int

    /// A view of `storage` (no copy). The range is validated.
    /// - Throws: `NunchakuError.invalidArgument` when the shape is negative or the bytes are too few.
    public init(storage: TensorStorage, byteOffset: Int = 0, shape: [Int], dtype: DType) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw NunchakuError.invalidArgument(context: "Tensor", reason: "negative dimension in shape \(shape)")
        }
        let needed = dtype.byteCount(forElements: shape.reduce(1, *))
        guard byteOffset >= 0, byteOffset + needed <= storage.bytes.count else {
            throw NunchakuError.invalidArgument(
                context: "Tensor",
                reason: "shape \(shape) of \(dtype) needs \(needed) bytes at offset \(byteOffset), storage has \(storage.bytes.count)")
        }
        self.dtype = dtype
        self.shape = shape
        self.strides = Tensor.contiguousStrides(for: shape)
        self.storage = storage
        self.byteOffset = byteOffset
    }

    /// A new tensor of zeros.
    public init(zeros shape: [Int], dtype: DType) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        self.dtype = dtype
        self.shape = shape
        self.strides = Tensor.contiguousStrides(for: shape)
        self.storage = TensorStorage(zeroedByteCount: dtype.byteCount(forElements: shape.reduce(1, *)))
        self.byteOffset = 0
    }

    /// A new tensor holding a copy of `bytes`, which must be exactly the size the shape needs.
    public init(shape: [Int], dtype: DType, bytes: some Collection<UInt8>) throws {
        let needed = dtype.byteCount(forElements: shape.reduce(1, *))
        guard bytes.count == needed else {
            throw NunchakuError.invalidArgument(
                context: "Tensor", reason: "shape \(shape) of \(dtype) needs \(needed) bytes, got \(bytes.count)")
        }
        self.init(zeros: shape, dtype: dtype)
        let base = storage.mutableBaseAddress!
        // One memcpy for contiguous collections (arrays, raw buffers): called across modules this generic is not
        // specialized, and the element loop below then costs ~100 ns per byte (minutes for a 4-bit FLUX model).
        let copied: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            if let source = buffer.baseAddress { base.copyMemory(from: source, byteCount: buffer.count) }
        }
        if copied == nil {
            for (offset, byte) in bytes.enumerated() { base.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self) }
        }
    }

    /// A new tensor of `dtype` holding `values` rounded to that dtype (nearest even for floats).
    public init(_ values: [Float], shape: [Int], dtype: DType = .f32) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        self.init(zeros: shape, dtype: dtype)
        if dtype == .f32 {
            values.withUnsafeBytes { mutableBytes().copyMemory(from: $0) }
        } else {
            let destination = mutableBytes()
            for (index, value) in values.enumerated() {
                ElementCoding.write(Double(value), dtype, at: index, into: destination)
            }
        }
    }

    // MARK: Geometry

    /// The number of elements.
    public var elementCount: Int { shape.reduce(1, *) }
    /// The number of dimensions.
    public var rank: Int { shape.count }
    /// The bytes the elements occupy when contiguous.
    public var byteCount: Int { dtype.byteCount(forElements: elementCount) }
    /// Whether the elements lie in row-major order with no gaps.
    public var isContiguous: Bool { strides == Tensor.contiguousStrides(for: shape) || elementCount <= 1 }

    /// Row-major strides for `shape`.
    public static func contiguousStrides(for shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in shape.indices.reversed() {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }

    /// The same elements with another shape of equal element count (copies when not contiguous).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.reduce(1, *) == elementCount, newShape.allSatisfy({ $0 >= 0 }) else {
            throw NunchakuError.invalidArgument(context: "reshape", reason: "cannot reshape \(shape) to \(newShape)")
        }
        var result = contiguous()
        result.shape = newShape
        result.strides = Tensor.contiguousStrides(for: newShape)
        return result
    }

    /// A view with two dimensions swapped (no copy). Not available for packed 4-bit dtypes.
    public func transposed(_ first: Int, _ second: Int) throws -> Tensor {
        guard !dtype.isPacked4Bit else {
            throw NunchakuError.unsupported(context: "transpose", reason: "packed \(dtype) tensors cannot be strided views")
        }
        guard shape.indices.contains(first), shape.indices.contains(second) else {
            throw NunchakuError.invalidArgument(context: "transpose", reason: "axes \(first), \(second) out of range for rank \(rank)")
        }
        var result = self
        result.shape.swapAt(first, second)
        result.strides.swapAt(first, second)
        return result
    }

    /// A view of rows `range` along axis 0 (no copy when contiguous).
    public func slice(rows range: Range<Int>) throws -> Tensor {
        guard rank >= 1, range.lowerBound >= 0, range.upperBound <= shape[0] else {
            throw NunchakuError.invalidArgument(context: "slice", reason: "rows \(range) out of range for shape \(shape)")
        }
        let base = contiguous()
        let rowElements = base.elementCount / max(base.shape[0], 1)
        guard !dtype.isPacked4Bit || (rowElements * range.lowerBound) % 2 == 0 else {
            throw NunchakuError.unsupported(context: "slice", reason: "packed \(dtype) rows must start on a whole byte")
        }
        var result = base
        result.shape[0] = range.count
        result.byteOffset = base.byteOffset + dtype.byteCount(forElements: rowElements * range.lowerBound)
        return result
    }

    // MARK: Element access

    /// A contiguous tensor with the same elements (self when already contiguous).
    public func contiguous() -> Tensor {
        if isContiguous { return self }
        var result = Tensor(zeros: shape, dtype: dtype)
        let elementBytes = dtype.bitWidth / 8
        let source = rawBytes
        let destination = result.mutableBytes()
        var index = [Int](repeating: 0, count: rank)
        for linear in 0..<elementCount {
            let offset = zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 }
            destination.baseAddress!.advanced(by: linear * elementBytes)
                .copyMemory(from: source.baseAddress!.advanced(by: offset * elementBytes), byteCount: elementBytes)
            for axis in index.indices.reversed() {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
            }
        }
        return result
    }

    /// The bytes from element 0 onward. Meaningful as a packed buffer only when `isContiguous`.
    private var rawBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: storage.bytes[byteOffset...])
    }

    /// Calls `body` with the tensor's elements as contiguous bytes (copying first if strided).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let dense = contiguous()
        return try body(UnsafeRawBufferPointer(rebasing: dense.storage.bytes[dense.byteOffset..<(dense.byteOffset + dense.byteCount)]))
    }

    /// Calls `body` with writable contiguous bytes, copying first if the storage is shared, mapped or strided.
    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(mutableBytes())
    }

    /// Writable bytes of a uniquely owned, contiguous, allocated copy of this tensor.
    private mutating func mutableBytes() -> UnsafeMutableRawBufferPointer {
        if !isContiguous || storage.isMapped || !isKnownUniquelyReferenced(&storage) {
            let dense = contiguous()
            let copy = TensorStorage(copying: UnsafeRawBufferPointer(
                rebasing: dense.storage.bytes[dense.byteOffset..<(dense.byteOffset + dense.byteCount)]))
            storage = copy
            byteOffset = 0
            strides = Tensor.contiguousStrides(for: shape)
        }
        return UnsafeMutableRawBufferPointer(start: storage.mutableBaseAddress!.advanced(by: byteOffset), count: byteCount)
    }

    /// Every element converted to `Float`, in row-major order.
    public func floats() -> [Float] {
        if dtype == .f32 {
            return withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return withUnsafeBytes { bytes in
            (0..<elementCount).map { Float(ElementCoding.read(bytes, dtype, at: $0)) }
        }
    }

    /// Every element converted to `Double`, in row-major order (integers above 2^53 lose precision).
    public func doubles() -> [Double] {
        withUnsafeBytes { bytes in (0..<elementCount).map { ElementCoding.read(bytes, dtype, at: $0) } }
    }

    /// The elements reinterpreted as `T`, whose size must equal the dtype's (not for packed dtypes).
    public func scalars<T: BitwiseCopyable>(as type: T.Type) throws -> [T] {
        guard !dtype.isPacked4Bit, MemoryLayout<T>.stride * 8 == dtype.bitWidth else {
            throw NunchakuError.invalidArgument(
                context: "scalars", reason: "\(T.self) does not match the \(dtype.bitWidth)-bit \(dtype) elements")
        }
        return withUnsafeBytes { bytes in
            (0..<elementCount).map { bytes.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.stride, as: T.self) }
        }
    }

    /// The same values in another dtype (floats round to nearest even; integers round and clamp).
    public func converted(to target: DType) -> Tensor {
        if target == dtype { return self }
        var result = Tensor(zeros: shape, dtype: target)
        let destination = result.mutableBytes()
        withUnsafeBytes { source in
            for index in 0..<elementCount {
                ElementCoding.write(ElementCoding.read(source, dtype, at: index), target, at: index, into: destination)
            }
        }
        return result
    }
}
