import NunchakuCore

/// Builds a safetensors file from named tensors and writes it to disk.
///
/// The output is deterministic and laid out exactly as Python's `safetensors` lays it out: tensors
/// ordered by dtype width (widest first, the format's alignment order) and then by name (UTF-8
/// byte order), a compact JSON header with `__metadata__` first (its keys sorted), padded with
/// spaces to a multiple of 8 bytes. Given the same tensors and at most one metadata entry (Python
/// orders several metadata keys by hash), the bytes equal Python's.
///
/// `write(to:)` streams each tensor's bytes from wherever they live (often a memory map of another
/// checkpoint) into a temporary file beside the destination, then renames it into place; the whole
/// file is never assembled in memory.
public struct SafeTensorsWriter: Sendable {
    /// Free-form string metadata stored under `__metadata__` (nil writes no `__metadata__` key).
    public var metadata: [String: String]?
    private var tensors: [(name: String, tensor: RawTensor)] = []
    private var names = Set<String>()

    public init(metadata: [String: String]? = nil) {
        self.metadata = metadata
    }

    /// The number of tensors added so far.
    public var count: Int { tensors.count }

    /// Adds a tensor of any format dtype.
    /// - Throws: `SafeTensorsError.invalidTensor` for a repeated name or the reserved name `__metadata__`.
    public mutating func add(_ name: String, _ tensor: RawTensor) throws {
        guard name != SafeTensorsHeader.metadataKey else {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "the name is reserved for metadata")
        }
        guard names.insert(name).inserted else {
            throw SafeTensorsError.invalidTensor(tensor: name, reason: "a tensor of this name was already added")
        }
        tensors.append((name, tensor))
    }

    /// Adds an engine tensor (strided views are made contiguous first).
    /// - Throws: as `add(_:_:)` for raw tensors, and `.unsupportedDType` for packed integer 4-bit tensors.
    public mutating func add(_ name: String, _ tensor: Tensor) throws {
        try add(name, RawTensor(tensor, name: name))
    }

    /// Writes the file to `path`, replacing any file there only once the new one is complete.
    /// - Throws: `SafeTensorsError.io` when the file cannot be created, written or renamed, or
    ///   `.headerTooLarge` when the header would exceed the format's 100 MB limit.
    public func write(to path: String) throws {
        let (header, ordered) = try layout(file: path)
        let output = try AtomicFileOutput(destination: path)
        try header.withUnsafeBytes { try output.append($0) }
        for (_, tensor) in ordered {
            try tensor.withUnsafeBytes { try output.append($0) }
        }
        try output.commit()
    }

    /// The whole file as bytes in memory (for small files and tests; use `write(to:)` for checkpoints).
    public func serialized() throws -> [UInt8] {
        let (header, ordered) = try layout(file: "<memory>")
        var bytes = header
        bytes.reserveCapacity(header.count + ordered.reduce(0) { $0 + $1.tensor.byteCount })
        for (_, tensor) in ordered {
            tensor.withUnsafeBytes { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    /// The length prefix plus padded header, and the tensors in file order.
    private func layout(file: String) throws -> (header: [UInt8], ordered: [(name: String, tensor: RawTensor)]) {
        let ordered = tensors.sorted { left, right in
            if left.tensor.dtype != right.tensor.dtype {
                return left.tensor.dtype.alignmentRank > right.tensor.dtype.alignmentRank
            }
            return left.name.utf8.lexicographicallyPrecedes(right.name.utf8)
        }
        var members: [JSONMember] = []
        if let metadata {
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            members.append(JSONMember(SafeTensorsHeader.metadataKey, .object(keys.map { JSONMember($0, .string(metadata[$0]!)) })))
        }
        var offset = 0
        for (name, tensor) in ordered {
            let entry: JSONValue = .object([
                JSONMember("dtype", .string(tensor.dtype.name)),
                JSONMember("shape", .array(tensor.shape.map { .integer($0) })),
                JSONMember("data_offsets", .array([.integer(offset), .integer(offset + tensor.byteCount)])),
            ])
            members.append(JSONMember(name, entry))
            offset += tensor.byteCount
        }
        var text = Array(JSONValue.object(members).serialized().utf8)
        text.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - text.count % 8) % 8))
        guard text.count <= SafeTensorsHeader.maximumHeaderLength else {
            throw SafeTensorsError.headerTooLarge(file: file, length: UInt64(text.count))
        }
        let header = withUnsafeBytes(of: UInt64(text.count).littleEndian) { Array($0) } + text
        return (header, ordered)
    }
}
