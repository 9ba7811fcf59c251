/// The parsed and validated header of a safetensors file.
///
/// Layout: an 8-byte little-endian header length `n`, then `n` bytes of UTF-8 JSON (an object
/// mapping tensor names to `{"dtype", "shape", "data_offsets"}`, plus an optional `__metadata__`
/// object of strings), then the data section, which the tensors tile exactly.
public struct SafeTensorsHeader: Sendable, Equatable {
    /// The format's limit on the header length (100 MB, as in the reference library).
    public static let maximumHeaderLength = 100_000_000
    /// The reserved key holding free-form string metadata.
    public static let metadataKey = "__metadata__"

    /// The `__metadata__` map, or nil when the header has none.
    public let metadata: [String: String]?
    /// The tensors in data order (ascending offsets).
    public let tensors: [TensorInfo]
    /// The JSON length `n` stored in the first 8 bytes (including any padding).
    public let headerLength: Int
    /// The size of the data section in bytes.
    public let dataByteCount: Int
    private let indexByName: [String: Int]

    /// Where the data section starts in the file.
    public var dataStart: Int { 8 + headerLength }

    /// The entry for `name`, or nil.
    public func info(named name: String) -> TensorInfo? {
        indexByName[name].map { tensors[$0] }
    }

    /// Parses and validates the header of a whole safetensors file held in `fileBytes`.
    ///
    /// Checks, in order: the length prefix (present, ≤ 100 MB, inside the file), UTF-8, strict JSON
    /// (no duplicate keys), the shape of every entry, known dtypes, shape × dtype size = offset span,
    /// offsets inside the data section, and that the tensors tile the data section with no overlap
    /// and no unused bytes. Nothing is read past the header except to learn the file size.
    /// - Parameter file: the name used in error messages.
    /// - Throws: `SafeTensorsError` naming `file`, the tensor and the problem.
    public static func parse(fileBytes: UnsafeRawBufferPointer, file: String) throws -> SafeTensorsHeader {
        guard fileBytes.count >= 8 else { throw SafeTensorsError.fileTooSmall(file: file, size: fileBytes.count) }
        let length = fileBytes.loadUnaligned(as: UInt64.self).littleEndian
        guard length <= UInt64(maximumHeaderLength) else {
            throw SafeTensorsError.headerTooLarge(file: file, length: length)
        }
        guard Int(length) <= fileBytes.count - 8 else {
            throw SafeTensorsError.headerPastEnd(file: file, length: length, fileSize: fileBytes.count)
        }
        let headerLength = Int(length)
        let text = UnsafeRawBufferPointer(rebasing: fileBytes[8..<(8 + headerLength)])
        if let offset = UTF8Validation.firstInvalidOffset(in: text) {
            throw SafeTensorsError.headerNotUTF8(file: file, offset: offset)
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(text)
        } catch let error as JSONParseError {
            if let duplicate = error.duplicateKey, duplicate.depth == 1 {
                throw SafeTensorsError.duplicateTensor(file: file, tensor: duplicate.key)
            }
            throw SafeTensorsError.invalidJSON(file: file, offset: error.offset, reason: error.reason)
        }
        guard let members = json.objectMembers else {
            throw SafeTensorsError.invalidHeader(file: file, reason: "expected a JSON object, found \(json.kindDescription)")
        }
        var metadata: [String: String]?
        var entries: [TensorInfo] = []
        entries.reserveCapacity(members.count)
        for member in members {
            if member.key == metadataKey {
                metadata = try parseMetadata(member.value, file: file)
            } else {
                entries.append(try parseEntry(name: member.key, member.value, file: file))
            }
        }
        let dataByteCount = fileBytes.count - 8 - headerLength
        let tensors = try validateLayout(entries, dataByteCount: dataByteCount, file: file)
        var indexByName: [String: Int] = [:]
        for (index, tensor) in tensors.enumerated() {
            // Names that differ in bytes but are canonically equivalent collide in a Swift dictionary.
            guard indexByName.updateValue(index, forKey: tensor.name) == nil else {
                throw SafeTensorsError.duplicateTensor(file: file, tensor: tensor.name)
            }
        }
        return SafeTensorsHeader(
            metadata: metadata, tensors: tensors, headerLength: headerLength,
            dataByteCount: dataByteCount, indexByName: indexByName)
    }

    private static func parseMetadata(_ value: JSONValue, file: String) throws -> [String: String]? {
        if value == .null { return nil }
        guard let members = value.objectMembers else {
            throw SafeTensorsError.invalidMetadata(file: file, key: nil, reason: "expected an object, found \(value.kindDescription)")
        }
        var metadata: [String: String] = [:]
        for member in members {
            guard let text = member.value.stringValue else {
                throw SafeTensorsError.invalidMetadata(
                    file: file, key: member.key, reason: "values must be strings, found \(member.value.kindDescription)")
            }
            guard metadata.updateValue(text, forKey: member.key) == nil else {
                throw SafeTensorsError.invalidMetadata(file: file, key: member.key, reason: "key appears more than once")
            }
        }
        return metadata
    }

    private static func parseEntry(name: String, _ value: JSONValue, file: String) throws -> TensorInfo {
        func invalid(_ reason: String) -> SafeTensorsError {
            .invalidTensorEntry(file: file, tensor: name, reason: reason)
        }
        guard value.objectMembers != nil else { throw invalid("expected an object, found \(value.kindDescription)") }
        guard let dtypeValue = value["dtype"] else { throw invalid("missing \"dtype\"") }
        guard let dtypeName = dtypeValue.stringValue else { throw invalid("\"dtype\" must be a string") }
        guard let dtype = SafeTensorsDType(name: dtypeName) else {
            throw SafeTensorsError.unknownDType(file: file, tensor: name, dtype: dtypeName)
        }
        guard let shapeValue = value["shape"] else { throw invalid("missing \"shape\"") }
        guard let shape = naturalNumbers(shapeValue) else {
            throw invalid("\"shape\" must be an array of non-negative integers")
        }
        guard let offsetsValue = value["data_offsets"] else { throw invalid("missing \"data_offsets\"") }
        guard let offsets = naturalNumbers(offsetsValue), offsets.count == 2 else {
            throw invalid("\"data_offsets\" must be two non-negative integers [begin, end]")
        }
        guard offsets[0] <= offsets[1] else {
            throw invalid("\"data_offsets\" end \(offsets[1]) is before begin \(offsets[0])")
        }
        let info = TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: offsets[0]..<offsets[1])
        switch dtype.sizing(forShape: shape) {
        case .overflow:
            throw SafeTensorsError.shapeOverflow(file: file, tensor: name, shape: shape)
        case .partialByte:
            throw SafeTensorsError.partialByteTensor(file: file, tensor: name, dtype: dtype.name, shape: shape)
        case let .bytes(expected) where expected != info.byteCount:
            throw SafeTensorsError.sizeMismatch(
                file: file, tensor: name, dtype: dtype.name, shape: shape, expected: expected, actual: info.byteCount)
        case .bytes:
            return info
        }
    }

    /// The array's elements when they are all integers ≥ 0.
    private static func naturalNumbers(_ value: JSONValue) -> [Int]? {
        guard case let .array(elements) = value else { return nil }
        var numbers: [Int] = []
        numbers.reserveCapacity(elements.count)
        for element in elements {
            guard let number = element.intValue, number >= 0 else { return nil }
            numbers.append(number)
        }
        return numbers
    }

    /// The entries sorted by offset, after checking that they tile `[0, dataByteCount)` exactly.
    private static func validateLayout(_ entries: [TensorInfo], dataByteCount: Int, file: String) throws -> [TensorInfo] {
        for entry in entries where entry.dataOffsets.upperBound > dataByteCount {
            throw SafeTensorsError.offsetsOutOfRange(
                file: file, tensor: entry.name, begin: entry.dataOffsets.lowerBound,
                end: entry.dataOffsets.upperBound, dataSize: dataByteCount)
        }
        let sorted = entries.sorted {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name)
                < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name)
        }
        var covered = 0
        var previous: TensorInfo?
        for entry in sorted {
            if entry.dataOffsets.lowerBound < covered, let previous {
                throw SafeTensorsError.overlappingTensors(file: file, tensor: entry.name, previous: previous.name)
            }
            if entry.dataOffsets.lowerBound > covered {
                throw SafeTensorsError.dataHole(file: file, tensor: entry.name, begin: covered, end: entry.dataOffsets.lowerBound)
            }
            covered = entry.dataOffsets.upperBound
            previous = entry
        }
        if covered != dataByteCount {
            throw SafeTensorsError.dataHole(file: file, tensor: nil, begin: covered, end: dataByteCount)
        }
        return sorted
    }
}
