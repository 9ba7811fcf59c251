import CPUBackend
import CUDABackend
import NunchakuCore
import SVDQuant
@testable import SelfTest
import Testing

/// The `norm.quantize` self-test's CPU side, without a GPU: its reference (LayerNorm + modulate, rounded to the
/// activation dtype, then the fast path's quantization) against a LayerNorm summed in another fp32 order stays within
/// the bounds the case allows, and the checks refuse what lies outside them.
@Suite struct NormQuantizeCheckTests {
    /// LayerNorm and modulation of `x` `[B, S, D]` summed in Float, one value after the other (the reference sums in
    /// Double), then rounded to `type` and quantized for `p`.
    static func floatOrder(_ x: RandomTensor, table: RandomTensor, modulation: NormQuantizeSelfTests.Modulation, _ p: W4A4FastParameters)
        -> (codes: [UInt8], scales: [Float]) {
        let (tokens, width) = (x.shape[1], x.shape[2])
        let rows = x.values.count / width, columns = table.shape[1]
        var stored = [Float](repeating: 0, count: x.values.count)
        for row in 0..<rows {
            let values = x.values[(row * width)..<((row + 1) * width)]
            let mean = values.reduce(0, +) / Float(width)
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(width)
            let rstd = 1 / (variance + 1e-6).squareRoot()
            let modulationRow = (row / tokens) * columns
            for (i, value) in values.enumerated() {
                let scale = table.values[modulationRow + modulation.scale * width + i]
                let shift = table.values[modulationRow + modulation.shift * width + i]
                stored[row * width + i] = p.type.round((value - mean) * rstd * (modulation.offset + scale) + shift)
            }
        }
        return W4A4FastReference.quantize(stored, rows: rows, p)
    }

    @Test(arguments: [ActivationDType.bf16, .f16])
    func anotherSummationOrderStaysWithinTheCaseBounds(type: ActivationDType) throws {
        var random = SelfTestRandom(seed: 41)
        let weights = try W4A4SelfTestData.weights(.int4(3072, 128), &random)
        let p = try W4A4FastParameters(weights: weights, type: type)
        let dtype = type.dtype
        let x = RandomTensor(shape: [2, 96, 3072], dtype: dtype, range: -2...2, seed: 5)
        let table = RandomTensor(shape: [2, 3 * 3072], dtype: dtype, range: -1...1, seed: 6)
        let modulation = (chunks: 3, shift: 2, scale: 0, offset: Float(1))
        let reference = try NormQuantizeSelfTests.reference(x, table: table, modulation: modulation, rows: Array(0..<192), p)
        let other = Self.floatOrder(x, table: table, modulation: modulation, p)
        #expect(reference.codes.count == 192 * 3072 && reference.scales.count == 192)
        let oneStep = try W4A4FastSelfTests.checkCodesWithinOneStep(other.codes, reference.codes, "test")
        _ = try NormQuantizeSelfTests.checkScales(other.scales, reference.scales, "test")
        // With these seeds the two orders do round a few values to neighbouring 16-bit values (5 codes in bf16, 7 in
        // f16 of 590 k), so the bounds are exercised, not just met by identical results.
        #expect(oneStep > 0)
    }

    @Test func codesMayBeOneStepApartOnAFewOnly() throws {
        let reference = [UInt8](repeating: 0x30, count: 2000)
        var gpu = reference
        gpu[7] = 0x31
        gpu[8] = 0x2F
        #expect(try W4A4FastSelfTests.checkCodesWithinOneStep(gpu, reference, "test") == 2)
        gpu[9] = 0x32
        #expect(throws: NunchakuError.self) { try W4A4FastSelfTests.checkCodesWithinOneStep(gpu, reference, "test") }
        gpu[9] = 0x7F  // NaN: a byte never written
        #expect(throws: NunchakuError.self) { try W4A4FastSelfTests.checkCodesWithinOneStep(gpu, reference, "test") }
        gpu[9] = 0x31  // three of 2000 one step apart: more than 0.1 %
        #expect(throws: NunchakuError.self) { try W4A4FastSelfTests.checkCodesWithinOneStep(gpu, reference, "test") }
    }

    @Test func scalesMayMoveByOneSixteenBitStep() throws {
        #expect(try NormQuantizeSelfTests.checkScales([1, 0.5, 0], [1, 0.5, 0], "test") == 0)
        #expect(try NormQuantizeSelfTests.checkScales([1 + 1 / 128, 0.5 - 1 / 512], [1, 0.5], "test") == 2)
        #expect(throws: NunchakuError.self) { try NormQuantizeSelfTests.checkScales([1.01], [1], "test") }
        #expect(throws: NunchakuError.self) { try NormQuantizeSelfTests.checkScales([.nan], [1], "test") }
        #expect(throws: NunchakuError.self) { try NormQuantizeSelfTests.checkScales([1e-9], [0], "test") }
    }
}
