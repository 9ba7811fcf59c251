import Testing
@testable import NunchakuCore

@Test func floatsRoundTripThroughEveryFloatDType() {
    let values: [Float] = [0, 1, -2, 0.5, 3, -0.25]
    for dtype in [DType.f64, .f32, .f16, .bf16, .f8e4m3fn, .f8e5m2] {
        let tensor = Tensor(values, shape: [2, 3], dtype: dtype)
        #expect(tensor.floats() == values, "\(dtype)")
        #expect(tensor.byteCount == 6 * dtype.bitWidth / 8)
    }
}

@Test func packedFourBitKindsUseLowNibbleForEvenElements() throws {
    let tensor = Tensor([1, -2, 7, -8], shape: [4], dtype: .int4)
    #expect(tensor.byteCount == 2)
    let bytes = tensor.withUnsafeBytes { Array($0) }
    #expect(bytes == [0xE1, 0x87])
    #expect(tensor.floats() == [1, -2, 7, -8])
    let clamped = Tensor([20, -20], shape: [2], dtype: .int4)
    #expect(clamped.floats() == [7, -8])
    let unsigned = Tensor([0, 15, 3.6], shape: [3], dtype: .uint4)
    #expect(unsigned.floats() == [0, 15, 4])
    let fp4 = Tensor([0.5, -6, 2.9], shape: [3], dtype: .fp4e2m1)
    #expect(fp4.floats() == [0.5, -6, 3])
}

@Test func integerConversionRoundsAndClamps() {
    let tensor = Tensor([1.5, 2.5, -300, 300, .nan], shape: [5], dtype: .f32)
    #expect(tensor.converted(to: .i8).floats() == [2, 2, -128, 127, 0])
    #expect(tensor.converted(to: .u8).floats() == [2, 2, 0, 255, 0])
    #expect(Tensor([1e10], shape: [1]).converted(to: .i64).floats() == [1e10])
}

@Test func transposeIsAViewAndContiguousCopiesInOrder() throws {
    let tensor = Tensor([0, 1, 2, 3, 4, 5], shape: [2, 3])
    let transposed = try tensor.transposed(0, 1)
    #expect(transposed.shape == [3, 2])
    #expect(!transposed.isContiguous)
    #expect(transposed.storage === tensor.storage)
    #expect(transposed.floats() == [0, 3, 1, 4, 2, 5])
    #expect(try transposed.reshaped([6]).floats() == [0, 3, 1, 4, 2, 5])
}

@Test func mutationCopiesSharedStorage() {
    let original = Tensor([1, 2, 3], shape: [3])
    var copy = original
    copy.withUnsafeMutableBytes { $0.storeBytes(of: Float(9), as: Float.self) }
    #expect(original.floats() == [1, 2, 3])
    #expect(copy.floats() == [9, 2, 3])
}

@Test func sliceRowsViewsWithoutCopy() throws {
    let tensor = Tensor((0..<12).map(Float.init), shape: [4, 3])
    let rows = try tensor.slice(rows: 1..<3)
    #expect(rows.shape == [2, 3])
    #expect(rows.storage === tensor.storage)
    #expect(rows.floats() == [3, 4, 5, 6, 7, 8])
    #expect(throws: NunchakuError.self) { try tensor.slice(rows: 3..<5) }
}

@Test func bytesAreCopiedFromContiguousAndOtherCollections() throws {
    let bytes: [UInt8] = [1, 2, 3, 4, 250, 255]
    #expect(try Tensor(shape: [2, 3], dtype: .u8, bytes: bytes).withUnsafeBytes { Array($0) } == bytes)
    #expect(try bytes.withUnsafeBytes { try Tensor(shape: [6], dtype: .u8, bytes: $0) }.withUnsafeBytes { Array($0) } == bytes)
    #expect(try Tensor(shape: [6], dtype: .u8, bytes: bytes.lazy.map { $0 }).withUnsafeBytes { Array($0) } == bytes)
}

@Test func viewsRejectBadRanges() {
    let storage = TensorStorage(zeroedByteCount: 8)
    #expect(throws: NunchakuError.self) { try Tensor(storage: storage, byteOffset: 4, shape: [2], dtype: .f32) }
    #expect(throws: NunchakuError.self) { try Tensor(storage: storage, shape: [-1], dtype: .f32) }
    #expect(throws: NunchakuError.self) { try Tensor(shape: [3], dtype: .u8, bytes: [1, 2]) }
    #expect(throws: NunchakuError.self) { try Tensor([1, 2], shape: [2]).scalars(as: UInt16.self) }
}

@Test func safetensorsNamesMapBothWays() {
    for dtype in DType.allCases {
        guard let name = dtype.safetensorsName else { continue }
        #expect(DType(safetensorsName: name) == dtype)
    }
    #expect(DType(safetensorsName: "F8_E4M3") == .f8e4m3fn)
    #expect(DType(safetensorsName: "Q4") == nil)
}
