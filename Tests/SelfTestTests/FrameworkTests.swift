import NunchakuCore
@testable import SelfTest
import Testing

@Suite struct RandomInputTests {
    @Test(arguments: [DType.bf16, .f16, .f32])
    func valuesAreInRangeNeverZeroAndWhatTheTensorHolds(dtype: DType) throws {
        let random = RandomTensor(shape: [3, 70_001], dtype: dtype, range: -1...1, seed: 42)
        #expect(random.values.count == 210_003)
        #expect(random.values.allSatisfy { $0 != 0 && $0 >= -1 && $0 <= 1 })
        #expect(random.tensor.floats() == random.values)
        // Both signs and a spread of magnitudes, not a constant.
        #expect(random.values.contains { $0 < -0.9 } && random.values.contains { $0 > 0.9 })
        #expect(Set(random.values.prefix(1000)).count > 500)
    }

    @Test func theSeedAloneDecidesTheValues() {
        let first = RandomTensor(shape: [200_000], dtype: .bf16, range: -2...2, seed: 7)
        let again = RandomTensor(shape: [200_000], dtype: .bf16, range: -2...2, seed: 7)
        let other = RandomTensor(shape: [200_000], dtype: .bf16, range: -2...2, seed: 8)
        #expect(first.values == again.values)
        #expect(first.values != other.values)
    }

    @Test func caseSeedsDependOnNameAndBase() {
        let seed = SelfTestRandom.seed(for: "gemm.mma bf16 M=1", base: 5)
        #expect(seed == SelfTestRandom.seed(for: "gemm.mma bf16 M=1", base: 5))
        #expect(seed != SelfTestRandom.seed(for: "gemm.mma bf16 M=2", base: 5))
        #expect(seed != SelfTestRandom.seed(for: "gemm.mma bf16 M=1", base: 6))
    }

    @Test func uniformDrawsCoverTheRange() {
        var random = SelfTestRandom(seed: 1)
        let draws = (0..<10_000).map { _ in random.uniform(2...3) }
        #expect(draws.allSatisfy { $0 >= 2 && $0 <= 3 })
        let mean = draws.reduce(0, +) / Float(draws.count)
        #expect(abs(mean - 2.5) < 0.02)
    }

    @Test func rowSamplesKeepTheEndsAndAreDistinct() {
        var random = SelfTestRandom(seed: 3)
        let rows = SelfTestRows.sample(from: 4608, maximum: 64, random: &random)
        #expect(rows.count == 64)
        #expect(rows.first == 0 && rows.last == 4607)
        #expect(rows == rows.sorted() && Set(rows).count == 64)
        #expect(SelfTestRows.sample(from: 10, maximum: 64, random: &random) == Array(0..<10))
        #expect(SelfTestRows.sample(from: 1, maximum: 64, random: &random) == [0])
    }
}

@Suite struct ComparisonTests {
    static func bf16(_ bits: [UInt16]) throws -> Tensor {
        try Tensor(shape: [bits.count], dtype: .bf16, bytes: bits.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
    }

    @Test func relativeErrorIsTheNormOfTheDifferenceOverTheNormOfTheReference() throws {
        let output = try SelfTestOutput(Tensor([3, 4.5], shape: [2]))
        var comparison = SelfTestComparison()
        try comparison.compare(output, with: [3, 4])
        // ‖(0, 0.5)‖ / ‖(3, 4)‖ = 0.1
        #expect(abs(comparison.relativeError - 0.1) < 1e-12)
        #expect(comparison.maxAbsoluteError == 0.5)
        #expect(comparison.comparedElements == 2 && comparison.outputElements == 2)
    }

    @Test func poisonAndNaNAreCountedSeparately() throws {
        // 1.0, poison, canonical NaN, +inf, 2.0
        let output = try SelfTestOutput(try Self.bf16([0x3F80, 0xFFFF, 0x7FC0, 0x7F80, 0x4000]))
        #expect(output.unwrittenElements == 1)
        #expect(output.nonFiniteElements == 2)
        var comparison = SelfTestComparison()
        try comparison.compare(output, with: [1, 1, 1, 1, 2])
        #expect(comparison.unwrittenElements == 1 && comparison.nonFiniteElements == 2)
        #expect(comparison.relativeError.isNaN)
        #expect(comparison.maxAbsoluteError == .infinity)
    }

    @Test func float32AndHalfPoisonPatternsAreRecognised() throws {
        var f32 = Tensor(zeros: [3], dtype: .f32)
        f32.withUnsafeMutableBytes { $0.storeBytes(of: SelfTestPoison.word, toByteOffset: 4, as: UInt32.self) }
        #expect(try SelfTestOutput(f32).unwrittenElements == 1)
        let f16 = try Tensor(shape: [2], dtype: .f16, bytes: [0xFF, 0xFF, 0x00, 0x3C])
        let decoded = try SelfTestOutput(f16)
        #expect(decoded.unwrittenElements == 1 && decoded.values[1] == 1)
        #expect(throws: NunchakuError.self) { try SelfTestOutput(Tensor(zeros: [2], dtype: .i32)) }
    }

    @Test func rowSubsetsCompareTheChosenRowsAndCountEveryElement() throws {
        // 3 rows of 2; rows 0 and 2 compared; row 1 (unchecked) differs wildly but is not poison.
        let output = try SelfTestOutput(Tensor([1, 2, 100, 100, 5, 6], shape: [3, 2]))
        var comparison = SelfTestComparison()
        try comparison.compare(output, rows: [0, 2], width: 2, with: [1, 2, 5, 6])
        #expect(comparison.relativeError == 0)
        #expect(comparison.comparedElements == 4 && comparison.outputElements == 6)
        var wrong = SelfTestComparison()
        try wrong.compare(output, rows: [0, 1], width: 2, with: [1, 2, 5, 6])
        #expect(wrong.relativeError > 1)
        #expect(throws: NunchakuError.self) { try wrong.compare(output, rows: [3], width: 2, with: [1, 2]) }
        #expect(throws: NunchakuError.self) { try wrong.compare(output, with: [1]) }
    }

    @Test func zeroReferenceGivesZeroOrInfinity() throws {
        var same = SelfTestComparison()
        try same.compare(try SelfTestOutput(Tensor([0, 0], shape: [2])), with: [0, 0])
        #expect(same.relativeError == 0)
        var different = SelfTestComparison()
        try different.compare(try SelfTestOutput(Tensor([0, 1], shape: [2])), with: [0, 0])
        #expect(different.relativeError == .infinity)
    }
}
