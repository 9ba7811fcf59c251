import NunchakuCore

/// A tensor as the safetensors format sees it: a dtype name, a shape, and a view of its bytes.
///
/// Covers every format dtype, including those without an engine `DType`. Reading a file gives
/// views into the memory map (no copy); the writer streams these bytes to disk.
public struct RawTensor: Sendable {
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// The storage holding the bytes (a file mapping, or memory this process owns).
    public let storage: TensorStorage
    /// Where the tensor's bytes start inside `storage`.
    public let byteOffset: Int
    /// How many bytes the tensor occupies.
    public let byteCount: Int

    /// A view of the bytes at `byteOffset` in `storage`; the range and size rule are checked.
    /// - Parameter name: the tensor's name, for error messages.
    /// - Throws: `SafeTensorsError.invalidTensor` when the shape does not size to whole bytes or the storage is too short.
    public init(dtype: SafeTensorsDType, shape: [Int], storage: TensorStorage, byteOffset: Int = 0, name: String = "tensor") throws {
        guard case let .bytes(count) = dtype.sizing(forShape: shape) else {
            throw SafeTensorsError.invalidTensor(
                tensor: name, reason: "shape \(shape) of \(dtype) does not describe a whole number of bytes")
        }
        guard byteOffset >= 0, byteOffset <= storage.bytes.count, count <= storage.bytes.count - byteOffset else {
            throw SafeTensorsError.invalidTensor(
                tensor: name,
                reason: "shape \(shape) of \(dtype) needs \(count) bytes at offset \(byteOffset), storage has \(storage.bytes.count)")
        }
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
        self.byteOffset = byteOffset
        self.byteCount = count
    }

    /// A tensor holding a copy of `bytes`, which must be exactly the size `shape` and `dtype` need.
    public init(dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8], name: String = "tensor") throws {
        guard case let .bytes(count) = dtype.sizing(forShape: shape), count == bytes.count else {
            throw SafeTensorsError.invalidTensor(
                tensor: name, reason: "shape \(shape) of \(dtype) does not match \(bytes.count) bytes")
        }
        let storage = bytes.withUnsafeBytes { TensorStorage(copying: $0) }
        try self.init(dtype: dtype, shape: shape, storage: storage, name: name)
    }

    /// The bytes of an engine tensor (shared, not copied, when it is already contiguous).
    /// - Throws: `SafeTensorsError.unsupportedDType` for the packed integer 4-bit dtypes, which the
    ///   format cannot name (store them as `I8`/`U8` bytes instead).
    public init(_ tensor: Tensor, name: String = "tensor") throws {
        guard let dtype = SafeTensorsDType(tensor.dtype) else {
            throw SafeTensorsError.unsupportedDType(tensor: name, dtype: tensor.dtype.rawValue)
        }
        let dense = tensor.contiguous()
        try self.init(dtype: dtype, shape: dense.shape, storage: dense.storage, byteOffset: dense.byteOffset, name: name)
    }

    /// The number of elements.
    public var elementCount: Int { shape.reduce(1, *) }

    /// The same bytes as an engine `Tensor` (no copy).
    /// - Throws: `SafeTensorsError.unsupportedDType` when the dtype has no engine `DType`.
    public func tensor(name: String = "tensor") throws -> Tensor {
        guard let core = dtype.coreDType else {
            throw SafeTensorsError.unsupportedDType(tensor: name, dtype: dtype.name)
        }
        return try Tensor(storage: storage, byteOffset: byteOffset, shape: shape, dtype: core)
    }

    /// Calls `body` with the tensor's bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage.bytes[byteOffset..<(byteOffset + byteCount)]))
    }

    /// A copy of the tensor's bytes.
    public var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }
}
