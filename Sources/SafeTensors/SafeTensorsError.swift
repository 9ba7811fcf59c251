/// What can be wrong with a safetensors file, a shard index or a checkpoint folder.
///
/// Every case names the file and, where there is one, the tensor, so the message alone tells a
/// user what to fix. `description` is a single line.
public enum SafeTensorsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A file or folder could not be opened, read, listed, written or renamed.
    case io(path: String, reason: String)
    /// The file is shorter than the 8-byte header length.
    case fileTooSmall(file: String, size: Int)
    /// The header length exceeds the format's 100 MB limit.
    case headerTooLarge(file: String, length: UInt64)
    /// The header length points past the end of the file.
    case headerPastEnd(file: String, length: UInt64, fileSize: Int)
    /// The header bytes are not valid UTF-8.
    case headerNotUTF8(file: String, offset: Int)
    /// The header is not valid JSON (`offset` counts bytes from the start of the header text).
    case invalidJSON(file: String, offset: Int, reason: String)
    /// The header is JSON but not a safetensors header (e.g. not an object).
    case invalidHeader(file: String, reason: String)
    /// `__metadata__` is not an object of strings.
    case invalidMetadata(file: String, key: String?, reason: String)
    /// A tensor entry lacks a field or has a field of the wrong type.
    case invalidTensorEntry(file: String, tensor: String, reason: String)
    /// A tensor uses a dtype name the format does not define.
    case unknownDType(file: String, tensor: String, dtype: String)
    /// Two tensors share a name.
    case duplicateTensor(file: String, tensor: String)
    /// A sub-byte tensor whose elements do not fill whole bytes (e.g. an odd number of `F4` values).
    case partialByteTensor(file: String, tensor: String, dtype: String, shape: [Int])
    /// The shape's element or byte count does not fit in an `Int`.
    case shapeOverflow(file: String, tensor: String, shape: [Int])
    /// The data offsets span a different number of bytes than shape × dtype needs.
    case sizeMismatch(file: String, tensor: String, dtype: String, shape: [Int], expected: Int, actual: Int)
    /// The data offsets reach past the end of the data section.
    case offsetsOutOfRange(file: String, tensor: String, begin: Int, end: Int, dataSize: Int)
    /// A tensor's bytes overlap the previous tensor's.
    case overlappingTensors(file: String, tensor: String, previous: String)
    /// Unused bytes lie in the data section: before `tensor`, or after the last tensor when `tensor` is nil.
    case dataHole(file: String, tensor: String?, begin: Int, end: Int)
    /// The requested tensor does not exist.
    case tensorNotFound(source: String, tensor: String)
    /// The tensor's dtype has no engine `DType` (or an engine dtype has no safetensors name).
    case unsupportedDType(tensor: String, dtype: String)
    /// A byte view or tensor handed to the writer does not describe valid safetensors data.
    case invalidTensor(tensor: String, reason: String)
    /// A shard index (`*.safetensors.index.json`) is malformed.
    case invalidIndex(file: String, reason: String)
    /// A shard listed by an index does not exist.
    case missingShard(index: String, shard: String)
    /// A shard does not hold a tensor its index assigns to it.
    case tensorMissingFromShard(index: String, shard: String, tensor: String)
    /// Two files of one checkpoint folder hold a tensor of the same name.
    case duplicateTensorAcrossFiles(tensor: String, first: String, second: String)
    /// A folder has no `.safetensors` file (or several index files, named in `reason`).
    case noCheckpointInFolder(folder: String, reason: String)

    public var description: String {
        switch self {
        case let .io(path, reason):
            "\(path): \(reason)"
        case let .fileTooSmall(file, size):
            "\(file): \(size) bytes is too small for a safetensors file (the header length alone takes 8)"
        case let .headerTooLarge(file, length):
            "\(file): header length \(length) exceeds the 100000000-byte limit"
        case let .headerPastEnd(file, length, fileSize):
            "\(file): header length \(length) reaches past the end of the \(fileSize)-byte file"
        case let .headerNotUTF8(file, offset):
            "\(file): header is not valid UTF-8 (byte \(offset) of the header)"
        case let .invalidJSON(file, offset, reason):
            "\(file): header is not valid JSON at byte \(offset): \(reason)"
        case let .invalidHeader(file, reason):
            "\(file): invalid header: \(reason)"
        case let .invalidMetadata(file, key, reason):
            "\(file): invalid __metadata__\(key.map { " entry \(quoted($0))" } ?? ""): \(reason)"
        case let .invalidTensorEntry(file, tensor, reason):
            "\(file): tensor \(quoted(tensor)): \(reason)"
        case let .unknownDType(file, tensor, dtype):
            "\(file): tensor \(quoted(tensor)) has unknown dtype \(quoted(dtype))"
        case let .duplicateTensor(file, tensor):
            "\(file): tensor \(quoted(tensor)) appears more than once"
        case let .partialByteTensor(file, tensor, dtype, shape):
            "\(file): tensor \(quoted(tensor)) of \(dtype) with shape \(shape) does not fill a whole number of bytes"
        case let .shapeOverflow(file, tensor, shape):
            "\(file): tensor \(quoted(tensor)) has shape \(shape), whose size overflows"
        case let .sizeMismatch(file, tensor, dtype, shape, expected, actual):
            "\(file): tensor \(quoted(tensor)) of \(dtype) with shape \(shape) needs \(expected) bytes, its offsets span \(actual)"
        case let .offsetsOutOfRange(file, tensor, begin, end, dataSize):
            "\(file): tensor \(quoted(tensor)) has data offsets [\(begin), \(end)] outside the \(dataSize)-byte data section"
        case let .overlappingTensors(file, tensor, previous):
            "\(file): tensor \(quoted(tensor)) overlaps tensor \(quoted(previous))"
        case let .dataHole(file, tensor, begin, end):
            if let tensor {
                "\(file): data bytes [\(begin), \(end)) before tensor \(quoted(tensor)) belong to no tensor"
            } else {
                "\(file): data bytes [\(begin), \(end)) after the last tensor belong to no tensor"
            }
        case let .tensorNotFound(source, tensor):
            "\(source): no tensor named \(quoted(tensor))"
        case let .unsupportedDType(tensor, dtype):
            "tensor \(quoted(tensor)): dtype \(dtype) is not supported here"
        case let .invalidTensor(tensor, reason):
            "tensor \(quoted(tensor)): \(reason)"
        case let .invalidIndex(file, reason):
            "\(file): invalid shard index: \(reason)"
        case let .missingShard(index, shard):
            "\(index): shard \(quoted(shard)) does not exist"
        case let .tensorMissingFromShard(index, shard, tensor):
            "\(index): tensor \(quoted(tensor)) is assigned to shard \(quoted(shard)), which does not hold it"
        case let .duplicateTensorAcrossFiles(tensor, first, second):
            "tensor \(quoted(tensor)) is in both \(first) and \(second)"
        case let .noCheckpointInFolder(folder, reason):
            "\(folder): \(reason)"
        }
    }
}

/// `text` in double quotes, with control characters and quotes escaped so a message stays on one line.
func quoted(_ text: String) -> String {
    JSONValue.string(text).serialized()
}
