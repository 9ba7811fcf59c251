import NunchakuCore
import Testing
@testable import SafeTensors

/// One small tensor of every format dtype, with distinct recognisable bytes.
func tensorOfEveryDType() throws -> [(String, RawTensor)] {
    try SafeTensorsDType.allCases.enumerated().map { index, dtype in
        let shape = dtype.bitWidth == 6 ? [4] : dtype.bitWidth == 4 ? [2, 2] : [3]
        guard case let .bytes(count) = dtype.sizing(forShape: shape) else { throw SafeTensorsError.invalidTensor(tensor: "", reason: "") }
        let bytes = (0..<count).map { UInt8(truncatingIfNeeded: index * 16 + $0 + 1) }
        return ("t_\(dtype.name.lowercased())", try RawTensor(dtype: dtype, shape: shape, bytes: bytes))
    }
}

@Test func writerLaysOutTensorsLikePythonSafetensors() throws {
    var writer = SafeTensorsWriter(metadata: ["z": "1", "a": "2"])
    try writer.add("c", RawTensor(dtype: .u8, shape: [3], bytes: [7, 8, 9]))
    try writer.add("b", Tensor([1, 2], shape: [2]))
    try writer.add("a", Tensor([3], shape: [1]))
    try writer.add("d", RawTensor(dtype: .f64, shape: [], bytes: Array(repeating: 0, count: 8)))
    let bytes = try writer.serialized()
    let expectedHeader = #"{"__metadata__":{"a":"2","z":"1"},"#
        + #""d":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"#
        + #""a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"#
        + #""b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]},"#
        + #""c":{"dtype":"U8","shape":[3],"data_offsets":[20,23]}}"#
    let padding = (8 - expectedHeader.utf8.count % 8) % 8
    #expect(headerText(of: bytes) == expectedHeader + String(repeating: " ", count: padding))
    #expect((8 + expectedHeader.utf8.count + padding) % 8 == 0)
    #expect(bytes.count == 8 + expectedHeader.utf8.count + padding + 23)
    #expect(Array(bytes.suffix(3)) == [7, 8, 9])
}

@Test func writerOutputDoesNotDependOnInsertionOrder() throws {
    let tensors = try tensorOfEveryDType()
    var forward = SafeTensorsWriter(metadata: ["k": "v"])
    for (name, tensor) in tensors { try forward.add(name, tensor) }
    var backward = SafeTensorsWriter(metadata: ["k": "v"])
    for (name, tensor) in tensors.reversed() { try backward.add(name, tensor) }
    #expect(try forward.serialized() == backward.serialized())
}

@Test func everyDTypeRoundTripsThroughAMappedFile() throws {
    let folder = try TemporaryFolder()
    let tensors = try tensorOfEveryDType()
    var writer = SafeTensorsWriter(metadata: ["format": "pt", "multi\nline": "ünïcode \"quoted\""])
    for (name, tensor) in tensors { try writer.add(name, tensor) }
    let path = folder.file("all.safetensors")
    try writer.write(to: path)

    let file = try SafeTensorsFile(path: path)
    #expect(file.metadata == ["format": "pt", "multi\nline": "ünïcode \"quoted\""])
    #expect(Set(file.tensorNames) == Set(tensors.map(\.0)))
    for (name, written) in tensors {
        let read = try file.raw(name)
        #expect(read.dtype == written.dtype)
        #expect(read.shape == written.shape)
        #expect(read.bytes == written.bytes)
        #expect(read.storage.isMapped)
        if let core = written.dtype.coreDType {
            let tensor = try file.tensor(name)
            #expect(tensor.dtype == core)
            #expect(tensor.storage.isMapped)
        }
    }
    #expect(try writer.serialized() == FileContents.read(path))
}

@Test func engineTensorsKeepTheirValues() throws {
    let folder = try TemporaryFolder()
    let values: [Float] = [1.5, -2, 0.25, 448, -0.5, 3]
    var writer = SafeTensorsWriter()
    for dtype in [DType.f32, .f16, .bf16, .f8e4m3fn, .f64, .i32] {
        try writer.add(dtype.rawValue, Tensor(values, shape: [2, 3], dtype: dtype))
    }
    try writer.add("transposed", try Tensor(values, shape: [2, 3]).transposed(0, 1))
    try writer.write(to: folder.file("values.safetensors"))
    let file = try SafeTensorsFile(path: folder.file("values.safetensors"))
    for dtype in [DType.f32, .f16, .bf16, .f8e4m3fn, .f64] {
        #expect(try file.tensor(dtype.rawValue).floats() == values)
    }
    #expect(try file.tensor("i32").floats() == [2, -2, 0, 448, 0, 3])
    #expect(try file.tensor("transposed").shape == [3, 2])
    #expect(try file.tensor("transposed").floats() == [1.5, 448, -2, -0.5, 0.25, 3])
}

@Test func writingReplacesAFileAtomicallyAndLeavesNoTemporaryFiles() throws {
    let folder = try TemporaryFolder()
    let path = try folder.write("model.safetensors", Array("old contents".utf8))
    let old = try MappedFile(path: path)
    defer { withExtendedLifetime(old) {} }
    var writer = SafeTensorsWriter()
    try writer.add("x", Tensor([1, 2, 3], shape: [3]))
    try writer.write(to: path)
    #expect(try folder.listing() == ["model.safetensors"])
    #expect(String(decoding: old.bytes, as: UTF8.self) == "old contents")
    #expect(try SafeTensorsFile(path: path).tensor("x").floats() == [1, 2, 3])
}

@Test func writingIntoAMissingFolderIsAnIOError() throws {
    let folder = try TemporaryFolder()
    let path = folder.file("missing/model.safetensors")
    #expect {
        try SafeTensorsWriter().write(to: path)
    } throws: { error in
        guard case let .io(errorPath, _) = error as? SafeTensorsError else { return false }
        return errorPath == path
    }
    #expect(try folder.listing().isEmpty)
}

@Test func writerRejectsRepeatedReservedAndUnnamableTensors() throws {
    var writer = SafeTensorsWriter()
    try writer.add("a", Tensor([1], shape: [1]))
    #expect(throws: SafeTensorsError.invalidTensor(tensor: "a", reason: "a tensor of this name was already added")) {
        try writer.add("a", Tensor([2], shape: [1]))
    }
    #expect(throws: SafeTensorsError.invalidTensor(tensor: "__metadata__", reason: "the name is reserved for metadata")) {
        try writer.add("__metadata__", Tensor([2], shape: [1]))
    }
    #expect(throws: SafeTensorsError.unsupportedDType(tensor: "q", dtype: "int4")) {
        try writer.add("q", Tensor(zeros: [4], dtype: .int4))
    }
    #expect(writer.count == 1)
}

@Test func rawTensorsCheckTheirSize() throws {
    #expect(throws: SafeTensorsError.invalidTensor(tensor: "tensor", reason: "shape [3] of F4 does not match 2 bytes")) {
        try RawTensor(dtype: .f4, shape: [3], bytes: [0, 0])
    }
    #expect(throws: SafeTensorsError.invalidTensor(tensor: "tensor", reason: "shape [2] of F32 does not match 4 bytes")) {
        try RawTensor(dtype: .f32, shape: [2], bytes: [0, 0, 0, 0])
    }
    let storage = TensorStorage(zeroedByteCount: 6)
    #expect(throws: SafeTensorsError.invalidTensor(
        tensor: "tensor", reason: "shape [2] of F32 needs 8 bytes at offset 2, storage has 6")) {
        try RawTensor(dtype: .f32, shape: [2], storage: storage, byteOffset: 2)
    }
}

@Test func dtypeTableMatchesTheFormat() {
    #expect(SafeTensorsDType.allCases.count == 22)
    #expect(SafeTensorsDType(name: "F8_E4M3") == .f8e4m3)
    #expect(SafeTensorsDType(name: "F8_E4M3FN") == nil)
    #expect(SafeTensorsDType.f4.sizing(forShape: [3, 2]) == .bytes(3))
    #expect(SafeTensorsDType.f4.sizing(forShape: [3]) == .partialByte(bits: 12))
    #expect(SafeTensorsDType.f6e2m3.sizing(forShape: [4]) == .bytes(3))
    #expect(SafeTensorsDType.c64.sizing(forShape: [2]) == .bytes(16))
    #expect(SafeTensorsDType.u8.sizing(forShape: [Int.max, 2]) == .overflow)
    for dtype in DType.allCases {
        let stored = SafeTensorsDType(dtype)
        #expect(stored?.coreDType == (dtype.isPacked4Bit && dtype != .fp4e2m1 ? nil : dtype))
        if let stored { #expect(stored.bitWidth == dtype.bitWidth) }
    }
    // Python's writer orders dtypes by this rank (Rust enum order), widest first in the file.
    #expect(SafeTensorsDType.u64.alignmentRank > SafeTensorsDType.f64.alignmentRank)
    #expect(SafeTensorsDType.bf16.alignmentRank > SafeTensorsDType.f16.alignmentRank)
    #expect(SafeTensorsDType.bool.alignmentRank == 0)
}
