@testable import CUDABackend
import NunchakuCore
import Testing

/// The float8 attention's codes output without a GPU: the CPU reference (`AttentionFP8CodesReference`) on
/// hand-computed values, and what NVRTC makes of the codes entry points.
@Suite struct AttentionFP8CodesTests {
    /// 9/8 of each head's largest |1/smooth|, rounded once to fp32.
    @Test func headFactorsAreNineEighthsOfEachHeadsLargestFactor() {
        var inverseSmooth = [Float](repeating: 0.5, count: 256)
        inverseSmooth[3] = -4
        inverseSmooth[200] = 0.1
        #expect(AttentionFP8CodesReference.headFactors(inverseSmooth) == [4.5, Float(0.5625)])
    }

    /// Two heads, one sample, three tokens split after the first: table 0 for token 0, table 1 for the rest.
    @Test func codesUseTheBoundOfTheirTable() {
        let width = 256
        var output = [Float](repeating: 0, count: 3 * width)
        output[0] = 1          // token 0, head 0, table 0
        output[width + 130] = -0.5  // token 1, head 1, table 1
        output[2 * width + 5] = 3   // token 2, head 0, table 1
        let tables = [(inverseSmooth: [Float](repeating: 1, count: width), headFactors: [Float(1.125), Float(1.125)]),
                      (inverseSmooth: [Float](repeating: 2, count: width), headFactors: [Float(2.25), Float(2.25)])]
        // v scales 1/448 and 2/448: max |v| 1 and 2 per head; bounds 448 · max(1/448 · f, 2/448 · f).
        let valueScales: [Float] = [Float(1) / 448, Float(2) / 448]
        let result = AttentionFP8CodesReference.quantize(output, valueScales: valueScales, batch: 1, tokens: 3, heads: 2,
                                                         tables: tables, splitToken: 1)
        let amax0 = 448 * (Float(2) / 448 * 1.125), amax1 = 448 * (Float(2) / 448 * 2.25)
        #expect(result.scales == [amax0 / 448, amax1 / 448, amax1 / 448])
        // Token 0: 1 · 1 · 448/2.25 = 199.1 → e4m3 192 (1.5 · 2^7 = 0x74).
        #expect(result.codes[0] == 0x74)
        // Token 1: −0.5 · 2 · 448/4.5 = −99.6 → −96 (1.5 · 2^6 = 0x6C, negative 0xEC).
        #expect(result.codes[width + 130] == 0xEC)
        // Token 2: 3 · 2 · 448/4.5 = 597 → saturates at 448 (0x7E): a value past the bound clips.
        #expect(result.codes[2 * width + 5] == 0x7E)
        #expect(result.codes.filter { $0 != 0 }.count == 3)
    }
}
