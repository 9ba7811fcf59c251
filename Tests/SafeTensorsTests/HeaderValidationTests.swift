import Testing
@testable import SafeTensors

private let file = "<memory>"

private func open(_ header: String, data: [UInt8] = []) throws -> SafeTensorsFile {
    try SafeTensorsFile(bytes: fileBytes(header: header, data: data))
}

private func expectError(_ expected: SafeTensorsError, header: String, data: [UInt8] = [], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(throws: expected, sourceLocation: sourceLocation) { try open(header, data: data) }
}

@Test func acceptsAnEmptyHeaderAndPaddingWhitespace() throws {
    let empty = try open("{}")
    #expect(empty.tensorNames.isEmpty)
    #expect(empty.metadata == nil)
    let padded = try open("\t\n {\"__metadata__\": null, \"t\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]}} \r ",
                          data: [7, 9])
    #expect(padded.metadata == nil)
    #expect(try padded.raw("t").bytes == [7, 9])
}

@Test func readsMetadataAndIgnoresUnknownEntryFields() throws {
    let opened = try open(#"{"__metadata__": {"format": "pt", "note": "ü"}, "a": {"dtype": "F32", "shape": [], "data_offsets": [0, 4], "extra": 1}}"#,
                          data: [0, 0, 0x80, 0x3F])
    #expect(opened.metadata == ["format": "pt", "note": "ü"])
    #expect(try opened.tensor("a").floats() == [1])
}

@Test func rejectsFilesTooShortForTheLengthPrefix() {
    #expect(throws: SafeTensorsError.fileTooSmall(file: file, size: 5)) { try SafeTensorsFile(bytes: [1, 2, 3, 4, 5]) }
}

@Test func rejectsHeaderLengthsOverTheLimitOrPastTheEnd() {
    var tooLarge = withUnsafeBytes(of: UInt64(100_000_001).littleEndian) { Array($0) }
    tooLarge += Array("{}".utf8)
    #expect(throws: SafeTensorsError.headerTooLarge(file: file, length: 100_000_001)) { try SafeTensorsFile(bytes: tooLarge) }
    var huge = withUnsafeBytes(of: UInt64.max.littleEndian) { Array($0) }
    huge += Array("{}".utf8)
    #expect(throws: SafeTensorsError.headerTooLarge(file: file, length: .max)) { try SafeTensorsFile(bytes: huge) }
    var pastEnd = withUnsafeBytes(of: UInt64(10).littleEndian) { Array($0) }
    pastEnd += Array("{}".utf8)
    #expect(throws: SafeTensorsError.headerPastEnd(file: file, length: 10, fileSize: 10)) { try SafeTensorsFile(bytes: pastEnd) }
}

@Test func rejectsHeadersThatAreNotUTF8OrNotJSONObjects() {
    let invalidUTF8 = withUnsafeBytes(of: UInt64(4).littleEndian) { Array($0) } + [0x7B, 0x22, 0xFF, 0x7D]
    #expect(throws: SafeTensorsError.headerNotUTF8(file: file, offset: 2)) { try SafeTensorsFile(bytes: invalidUTF8) }
    expectError(.invalidJSON(file: file, offset: 1, reason: "unexpected end of text, expected a string key"), header: "{")
    expectError(.invalidHeader(file: file, reason: "expected a JSON object, found an array"), header: "[]")
    expectError(.invalidHeader(file: file, reason: "expected a JSON object, found a string"), header: "\"x\"")
}

@Test func rejectsMetadataThatIsNotAnObjectOfStrings() {
    expectError(.invalidMetadata(file: file, key: nil, reason: "expected an object, found an array"), header: #"{"__metadata__": []}"#)
    expectError(.invalidMetadata(file: file, key: "n", reason: "values must be strings, found a number"),
                header: #"{"__metadata__": {"n": 1}}"#)
    expectError(.invalidMetadata(file: file, key: "o", reason: "values must be strings, found an object"),
                header: #"{"__metadata__": {"o": {}}}"#)
}

@Test func rejectsMalformedTensorEntries() {
    func entry(_ name: String, _ reason: String) -> SafeTensorsError { .invalidTensorEntry(file: file, tensor: name, reason: reason) }
    expectError(entry("t", "expected an object, found a number"), header: #"{"t": 3}"#)
    expectError(entry("t", "missing \"dtype\""), header: #"{"t": {"shape": [], "data_offsets": [0, 0]}}"#)
    expectError(entry("t", "\"dtype\" must be a string"), header: #"{"t": {"dtype": 4, "shape": [], "data_offsets": [0, 0]}}"#)
    expectError(entry("t", "missing \"shape\""), header: #"{"t": {"dtype": "U8", "data_offsets": [0, 0]}}"#)
    expectError(entry("t", "\"shape\" must be an array of non-negative integers"),
                header: #"{"t": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}"#)
    expectError(entry("t", "\"shape\" must be an array of non-negative integers"),
                header: #"{"t": {"dtype": "U8", "shape": [2.0], "data_offsets": [0, 2]}}"#, data: [0, 0])
    expectError(entry("t", "missing \"data_offsets\""), header: #"{"t": {"dtype": "U8", "shape": []}}"#)
    expectError(entry("t", "\"data_offsets\" must be two non-negative integers [begin, end]"),
                header: #"{"t": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1, 2]}}"#, data: [0])
    expectError(entry("t", "\"data_offsets\" end 0 is before begin 1"),
                header: #"{"t": {"dtype": "U8", "shape": [1], "data_offsets": [1, 0]}}"#, data: [0])
}

@Test func rejectsUnknownDTypes() {
    expectError(.unknownDType(file: file, tensor: "t", dtype: "F128"),
                header: #"{"t": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}"#, data: Array(repeating: 0, count: 16))
    expectError(.unknownDType(file: file, tensor: "t", dtype: "f32"),
                header: #"{"t": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}}"#, data: [0, 0, 0, 0])
}

@Test func rejectsSizesThatDisagreeWithShapeAndDType() {
    expectError(.sizeMismatch(file: file, tensor: "t", dtype: "F32", shape: [2, 3], expected: 24, actual: 20),
                header: #"{"t": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}"#, data: Array(repeating: 0, count: 20))
    expectError(.partialByteTensor(file: file, tensor: "t", dtype: "F4", shape: [3]),
                header: #"{"t": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}"#, data: [0, 0])
    expectError(.partialByteTensor(file: file, tensor: "t", dtype: "F6_E2M3", shape: [2]),
                header: #"{"t": {"dtype": "F6_E2M3", "shape": [2], "data_offsets": [0, 2]}}"#, data: [0, 0])
    expectError(.shapeOverflow(file: file, tensor: "t", shape: [4_294_967_296, 4_294_967_296]),
                header: #"{"t": {"dtype": "U8", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}"#)
    expectError(.shapeOverflow(file: file, tensor: "t", shape: [2_305_843_009_213_693_952]),
                header: #"{"t": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 0]}}"#)
}

@Test func sizesSubByteDTypesByTheFormatRule() throws {
    let f4 = try open(#"{"t": {"dtype": "F4", "shape": [2, 3], "data_offsets": [0, 3]}}"#, data: [0x21, 0x43, 0xF7])
    #expect(try f4.tensor("t").floats() == [0.5, 1, 1.5, 2, 6, -6])
    let f6 = try open(#"{"t": {"dtype": "F6_E3M2", "shape": [4], "data_offsets": [0, 3]}}"#, data: [1, 2, 3])
    #expect(try f6.raw("t").byteCount == 3)
    #expect(throws: SafeTensorsError.unsupportedDType(tensor: "t", dtype: "F6_E3M2")) { try f6.tensor("t") }
}

@Test func rejectsOffsetsOutsideTheDataOverlapsAndHoles() {
    expectError(.offsetsOutOfRange(file: file, tensor: "t", begin: 0, end: 8, dataSize: 4),
                header: #"{"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#, data: [0, 0, 0, 0])
    expectError(.overlappingTensors(file: file, tensor: "b", previous: "a"),
                header: #"{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}"#,
                data: [0, 0, 0, 0])
    expectError(.dataHole(file: file, tensor: "b", begin: 2, end: 3),
                header: #"{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "b": {"dtype": "U8", "shape": [1], "data_offsets": [3, 4]}}"#,
                data: [0, 0, 0, 0])
    expectError(.dataHole(file: file, tensor: "a", begin: 0, end: 1),
                header: #"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}"#, data: [0, 0])
    expectError(.dataHole(file: file, tensor: nil, begin: 2, end: 5),
                header: #"{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}"#, data: [0, 0, 0, 0, 0])
}

@Test func acceptsTensorsInAnyHeaderOrderAndZeroSizedTensors() throws {
    let opened = try open(
        #"{"late": {"dtype": "U8", "shape": [1], "data_offsets": [2, 3]}, "empty": {"dtype": "F32", "shape": [0, 5], "data_offsets": [2, 2]}, "early": {"dtype": "U16", "shape": [1], "data_offsets": [0, 2]}}"#,
        data: [1, 2, 3])
    #expect(opened.tensorNames == ["early", "empty", "late"])
    #expect(try opened.tensor("empty").shape == [0, 5])
    #expect(try opened.tensor("late").floats() == [3])
    #expect(try opened.tensor("early").floats() == [513])
}

@Test func rejectsDuplicateTensorNamesAndMetadataKeys() {
    expectError(.duplicateTensor(file: file, tensor: "a"),
                header: #"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}"#,
                data: [0, 0])
    expectError(.duplicateTensor(file: file, tensor: "__metadata__"), header: #"{"__metadata__": {}, "__metadata__": {}}"#)
    expectError(.invalidJSON(file: file, offset: 28, reason: "duplicate key \"k\""), header: #"{"__metadata__": {"k": "1", "k": "2"}}"#)
}

@Test func reportsUnknownTensorNames() throws {
    let opened = try open("{}")
    #expect(throws: SafeTensorsError.tensorNotFound(source: file, tensor: "missing")) { try opened.info("missing") }
}

@Test func errorDescriptionsAreSingleLinesNamingFileAndTensor() {
    let error = SafeTensorsError.sizeMismatch(file: "/m.safetensors", tensor: "a\nb", dtype: "F32", shape: [2], expected: 8, actual: 4)
    #expect(error.description == #"/m.safetensors: tensor "a\nb" of F32 with shape [2] needs 8 bytes, its offsets span 4"#)
}
