/// One header entry: a tensor's name, dtype, shape and where its bytes lie in the data section.
/// Values come only from validated headers, so the shape's size always fits and matches the offsets.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorsDType
    /// The size of each dimension, outermost first (elements, not bytes: an `F4` row of 64 values is 64).
    public let shape: [Int]
    /// The byte range inside the data section (which starts after the header).
    public let dataOffsets: Range<Int>

    init(name: String, dtype: SafeTensorsDType, shape: [Int], dataOffsets: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }

    /// The bytes the tensor occupies.
    public var byteCount: Int { dataOffsets.count }

    /// The number of elements.
    public var elementCount: Int { shape.reduce(1, *) }
}
