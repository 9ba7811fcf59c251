import NunchakuCore
import Testing
@testable import SVDQuant

/// Hand-made cases pinning the quantize step's edge semantics (research/nunchaku-internals.md §3.2).
@Suite struct ActivationQuantizationTests {
    /// Quantizes one row of 128 values with all smoothing factors 1.
    static func quantizeRow(
        _ values: [Float], _ precision: SVDQuantPrecision, unsigned: Bool = false, type: ActivationDType = .bf16
    ) -> (codes: [Int], scales: [Float]) {
        precondition(values.count == 128)
        let (codes, scales) = ActivationQuantizer.quantize(
            values.map { type.round($0) }, rows: 1, k: 128, smooth: [Float](repeating: 1, count: 128),
            precision: precision, unsigned: unsigned, type: type)
        let table = W4A4GEMM.table(precision, signed: !unsigned)
        let decoded = W4A4GEMM.decode(codes, count: 128, table: table).map { Int($0) }
        return (decoded, TensorValues.floats(scales))
    }

    static func row(_ head: [Float], fill: Float = 0) -> [Float] {
        head + [Float](repeating: fill, count: 128 - head.count)
    }

    @Test func int4RoundsHalfToEvenWithTheUnroundedScale() {
        // amax 7 → scale 7·fp32(1/7) ≈ 1, stored as 1; t·rcp(scale) rounds half to even.
        let (codes, scales) = Self.quantizeRow(Self.row([7, 2.5, 3.5, -2.5, -0.5, 0.5, 1.5, -7]), .int4)
        #expect(Array(codes.prefix(8)) == [7, 2, 4, -2, 0, 0, 2, -7])
        #expect(scales == [1, 0])
    }

    @Test func allZeroGroupsGiveZeroCodesAndScalesAndNoNaN() throws {
        for precision in SVDQuantPrecision.allCases {
            let (codes, scales) = Self.quantizeRow(Self.row([]), precision)
            #expect(codes.allSatisfy { $0 == 0 } && scales.allSatisfy { $0 == 0 }, "\(precision)")
        }
        // Through a whole layer: zero input gives exactly the bias (zero low-rank input too), never NaN.
        var options = W4A4Fixtures.Options()
        options.k = 128
        for precision in SVDQuantPrecision.allCases {
            options.precision = precision
            let weights = try W4A4Fixtures.weights(options, seed: 3)
            let y = try SVDQW4A4Linear(weights: weights).forward(Tensor(zeros: [2, 128], dtype: .bf16)).floats()
            let bias = try #require(weights.canonical.bias).floats()
            #expect(y == bias + bias, "\(precision)")
        }
    }

    @Test func unsignedCodesShiftThenSaturateAtZero() {
        // x + 0.171875 then max/15: x = −0.171875 → 0; more negative inputs clamp to code 0; amax 15 → scale 1.
        let head: [Float] = [14.828125, -0.171875, -0.5, 0.328125, 2.828125]
        let (codes, scales) = Self.quantizeRow(Self.row(head, fill: -0.171875), .int4, unsigned: true)
        #expect(Array(codes.prefix(5)) == [15, 0, 0, 0, 3])  // 0.5 ties to 0; 3.0 → 3
        #expect(scales[0] == 1)
    }

    @Test func nvfp4RoundsToNearestEvenOnTheE2M1Grid() {
        // amax 6 → scale 1 (exact in e4m3); ties: 2.5 → 2, 5 → 4, 0.25 → 0, 0.75 → 1, 1.25 → 1, 3.5 → 4; −6 stays.
        let (codes, scales) = Self.quantizeRow(Self.row([6, 2.5, 5, 0.25, 0.75, 1.25, 3.5, -6, -1.75]), .nvfp4)
        #expect(Array(codes.prefix(9)).map { Float($0) / 2 } == [6, 2, 4, 0, 1, 1, 4, -6, -2])
        #expect(scales[0] == 1)
    }

    @Test func nvfp4ScaleSaturatesAt448AndCodesAt6() {
        // amax 6000 → amax/6 = 1000 → clamped to 448; 6000/448 ≈ 13.4 saturates to ±6.
        let (codes, scales) = Self.quantizeRow(Self.row([6000, -6000, 448, 2000]), .nvfp4)
        #expect(scales[0] == 448)
        #expect(Array(codes.prefix(4)).map { Float($0) / 2 } == [6, -6, 1, 4])
    }

    @Test func smoothingDividesAndRoundsToTheActivationType() throws {
        // bf16: 1/3 rounds to 0.333984375; with amax 7·(1/3) the codes are exact multiples.
        let type = ActivationDType.bf16
        var x = [Float](repeating: 0, count: 128)
        x[0] = 7; x[1] = 1
        var smooth = [Float](repeating: 1, count: 128)
        smooth[0] = 3; smooth[1] = 3
        let (codes, scales) = ActivationQuantizer.quantize(x, rows: 1, k: 128, smooth: smooth, precision: .int4, unsigned: false, type: type)
        let t0 = type.round(Float(7) / 3), t1 = type.round(Float(1) / 3)
        let scale = t0 * (Float(1) / 7)
        #expect(TensorValues.floats(scales)[0] == type.round(scale))
        let decoded = W4A4GEMM.decode(codes, count: 2, table: W4A4GEMM.table(.int4, signed: true))
        #expect(decoded == [7, Int16((t1 / scale).rounded(.toNearestOrEven))])
    }

    @Test func reciprocalEmulatesFlushToZero() {
        #expect(ActivationQuantizer.reciprocalApproximate(0) == .infinity)
        #expect(ActivationQuantizer.reciprocalApproximate(Float.leastNormalMagnitude / 2) == .infinity)
        #expect(ActivationQuantizer.reciprocalApproximate(4) == 0.25)
        #expect(ActivationQuantizer.reciprocalApproximate(0x1p127) == 0)  // 2^-127 is subnormal → flushed
    }
}
