/// The bytes behind one or more tensors: either memory this process allocated, or a read-only
/// view into a memory-mapped file (zero-copy checkpoint loading).
public final class TensorStorage: @unchecked Sendable {
    private enum Owner {
        case allocated(UnsafeMutableRawPointer)
        case mapped(MappedFile)
    }

    private let owner: Owner
    /// The storage's bytes.
    public let bytes: UnsafeRawBufferPointer

    /// Allocates `byteCount` zeroed bytes, 64-byte aligned.
    public init(zeroedByteCount byteCount: Int) {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        owner = .allocated(pointer)
        bytes = UnsafeRawBufferPointer(start: pointer, count: byteCount)
    }

    /// Allocates storage holding a copy of `source`.
    public convenience init(copying source: UnsafeRawBufferPointer) {
        self.init(zeroedByteCount: source.count)
        if let base = source.baseAddress, source.count > 0 {
            mutableBaseAddress!.copyMemory(from: base, byteCount: source.count)
        }
    }

    /// A view of `count` bytes at `offset` inside a mapped file. The caller has checked the range.
    public init(mapped file: MappedFile, offset: Int, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset + count <= file.bytes.count, "mapped range out of bounds")
        owner = .mapped(file)
        bytes = count == 0
            ? UnsafeRawBufferPointer(start: nil, count: 0)
            : UnsafeRawBufferPointer(rebasing: file.bytes[offset..<(offset + count)])
    }

    /// True when the bytes belong to a memory-mapped file (read-only).
    public var isMapped: Bool {
        if case .mapped = owner { return true }
        return false
    }

    /// The writable base address, or nil for mapped (read-only) storage.
    var mutableBaseAddress: UnsafeMutableRawPointer? {
        if case let .allocated(pointer) = owner { return pointer }
        return nil
    }

    deinit {
        if case let .allocated(pointer) = owner { pointer.deallocate() }
    }
}
