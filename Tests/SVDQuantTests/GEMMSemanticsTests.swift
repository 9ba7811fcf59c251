import NunchakuCore
import Testing
@testable import SVDQuant

/// Hand-made GEMM-step cases (quantized activations built directly) that pin the kernel's rounding points:
/// INT4 keeps its running sum in the 16-bit type and rounds psum and the scale product; NVFP4 accumulates in fp32.
@Suite struct GEMMSemanticsTests {
    /// A bf16 layer, N = 128, rank 0, no bias, whose channel 0 has `codes` (by input index) and per-group scales.
    static func layer(_ precision: SVDQuantPrecision, k: Int, codes: [Int: UInt8], scales: [Float]) throws -> SVDQW4A4Linear {
        let n = 128, groups = k / precision.groupSize
        var nibbles = [UInt8](repeating: 0, count: n * k)
        for (index, code) in codes { nibbles[index] = code }
        var scaleValues = [Float](repeating: 1, count: groups * n)
        for (group, scale) in scales.enumerated() { scaleValues[group * n] = scale }
        let wscales = precision == .int4
            ? halfTensor(scaleValues, [groups, n], .bf16)
            : bytesTensor(scaleValues.map { FloatFormats.e4m3fnBits($0) }, [groups, n], .f8e4m3fn)
        let tensors = SVDQW4A4Tensors(
            qweight: bytesTensor(ReshapePermuteReference.pairs(nibbles), [n, k / 2], .u8), wscales: wscales, bias: nil,
            smooth: halfTensor([Float](repeating: 1, count: k), [k], .bf16),
            projDown: Tensor(zeros: [k, 0], dtype: .bf16), projUp: Tensor(zeros: [n, 0], dtype: .bf16))
        return SVDQW4A4Linear(weights: try SVDQW4A4Weights(name: "gemm", tensors: tensors, layout: .canonical(vectorOrder: .natural)))
    }

    /// One row of quantized activations.
    static func activations(_ precision: SVDQuantPrecision, k: Int, codes: [Int: UInt8], scales: [Float]) throws -> QuantizedActivations {
        var nibbles = [UInt8](repeating: 0, count: k)
        for (index, code) in codes { nibbles[index] = code }
        let scaleTensor = precision == .int4
            ? halfTensor(scales, [1, scales.count], .bf16)
            : bytesTensor(scales.map { FloatFormats.e4m3fnBits($0) }, [1, scales.count], .f8e4m3fn)
        return try QuantizedActivations(
            precision: precision, activationDType: .bf16, unsigned: false,
            codes: bytesTensor(ReshapePermuteReference.pairs(nibbles), [1, k / 2], .u8), scales: scaleTensor,
            lowRank: Tensor(zeros: [1, 0], dtype: .f32))
    }

    static func codes(_ entries: [(range: Range<Int>, code: UInt8)]) -> [Int: UInt8] {
        var result: [Int: UInt8] = [:]
        for (range, code) in entries { for index in range { result[index] = code } }
        return result
    }

    @Test func int4RoundsTheScaleProductToBF16() throws {
        // psum 160 (40 × 2·2); ascale · wscale = (1 + 2⁻⁷)² rounds to 1 + 2⁻⁶, so 160 · that = 162.5 is a bf16 tie → 162.
        // With the exact product (162.51) the result would be 163.
        let s: Float = 1 + 0x1p-7
        let layer = try Self.layer(.int4, k: 128, codes: Self.codes([(0..<40, 2)]), scales: [s, 1])
        let y = try layer.multiply(Self.activations(.int4, k: 128, codes: Self.codes([(0..<40, 2)]), scales: [s, 1]))
        #expect(y.floats()[0] == 162)
    }

    @Test func int4KeepsTheRunningSumInBF16() throws {
        // Groups add 392, 1, 1, 0: in bf16 392 + 1 ties back to 392 twice; an fp32 sum would give 394.
        let weightCodes = Self.codes([(0..<64, 7), (64..<65, 1), (128..<129, 1)])
        let activationCodes = Self.codes([(0..<64, 7), (64..<65, 1), (128..<129, 1)])
        let layer = try Self.layer(.int4, k: 256, codes: weightCodes, scales: [0.125, 1, 1, 1])
        let y = try layer.multiply(Self.activations(.int4, k: 256, codes: activationCodes, scales: [1, 1, 1, 1]))
        #expect(y.floats()[0] == 392)
    }

    @Test func int4RoundsThePartialSumToBF16() throws {
        // Group 0 psum 257 (5 × 7·7 + 3 × 2·2) becomes bf16 256; group 1 adds 1 → 257 → 256. Exact: 258.
        let weightCodes = Self.codes([(0..<5, 7), (5..<8, 2), (64..<65, 1)])
        let layer = try Self.layer(.int4, k: 128, codes: weightCodes, scales: [1, 1])
        let y = try layer.multiply(Self.activations(.int4, k: 128, codes: weightCodes, scales: [1, 1]))
        #expect(y.floats()[0] == 256)
    }

    @Test func nvfp4AccumulatesInFP32() throws {
        // E2M1 codes: 6 = 4.0, 2 = 1.0. Group 0 gives 16 · 4·4 = 256; groups 4 and 8 (later 64-wide chunks) add 1
        // each: the fp32 accumulator holds 258 (a bf16 value); a bf16 running sum would stay at 256.
        let weightCodes = Self.codes([(0..<16, 6), (64..<65, 2), (128..<129, 2)])
        let scales = [Float](repeating: 1, count: 16)
        let layer = try Self.layer(.nvfp4, k: 256, codes: weightCodes, scales: scales)
        let y = try layer.multiply(Self.activations(.nvfp4, k: 256, codes: weightCodes, scales: scales))
        #expect(y.floats()[0] == 258)
    }

    @Test func signedINT4CodesAndNegativeProducts() throws {
        // Code 8 is −8 (two's complement): (−8)·7 · 64 = −3584.
        let layer = try Self.layer(.int4, k: 128, codes: Self.codes([(0..<64, 8)]), scales: [1, 1])
        let y = try layer.multiply(Self.activations(.int4, k: 128, codes: Self.codes([(0..<64, 7)]), scales: [1, 1]))
        #expect(y.floats()[0] == -3584)
        #expect(y.floats()[1] == 0)
    }
}
