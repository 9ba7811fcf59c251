import CUDABackend
import NunchakuCore
import SVDQuant
@testable import SelfTest
import Testing

/// The CPU reference of the fast (FP8) W4A4 path, without a GPU: hand-computed codes, scales, folded weights and
/// one output; agreement with the dense equivalent of random layers (independent of every rounding choice); the
/// layers it refuses; and the self-test cases that check the GPU against it.
@Suite struct W4A4FastReferenceTests {
    /// K = 128, N = 128, R = 16 (the smallest layer the validation accepts). Row 0 of x is (14, −7, 1, 0, …) with
    /// smoothing 2, so t = (7, −3.5, 0.5, 0, …); row 1 is 0. Channel 0 has codes (−8, 7, 1, 0, …) and group scale
    /// 0.01 (bf16 0.010009765625) in group 0; every other scale is 0.005 (exactly half) and every other code 0.
    static func tinyLayer() throws -> SVDQW4A4Weights {
        let k = 128, n = 128, r = 16
        var codes = [UInt8](repeating: 0, count: n * k / 2)
        codes[0] = 0x78  // k0 = −8 (nibble 8), k1 = 7
        codes[1] = 0x01  // k2 = 1
        var scales = [Float](repeating: 0.005, count: 2 * n)
        scales[0] = 0.01
        var bias = [Float](repeating: 0, count: n)
        bias[0] = 0.25
        bias[1] = -0.5
        let tensors = SVDQW4A4Tensors(
            qweight: try Tensor(shape: [n, k / 2], dtype: .u8, bytes: codes),
            wscales: Tensor(scales, shape: [2, n], dtype: .bf16),
            bias: Tensor(bias, shape: [n], dtype: .bf16),
            smooth: Tensor([Float](repeating: 2, count: k), shape: [k], dtype: .bf16),
            projDown: Tensor(zeros: [k, r], dtype: .bf16),
            projUp: Tensor([Float](repeating: 0.02, count: n * r), shape: [n, r], dtype: .bf16))
        return try SVDQW4A4Weights(name: "tiny", tensors: tensors, layout: .canonical(vectorOrder: .natural))
    }

    @Test func handComputedCodesScalesWeightsAndOutput() throws {
        let weights = try Self.tinyLayer()
        let p = try W4A4FastParameters(weights: weights, type: .bf16)
        let s0: Float = 0.010009765625, s1: Float = 0.0050048828125
        #expect(Array(p.channelScales[0..<2]) == [s0 * (8 / 448), s1 * (8 / 448)])
        // proj_up is the same everywhere, so beta = 256 · c1 / up (channel 1 has the smaller c): channel 1's
        // low-rank codes are 256, channel 0's 256 · c1/c0 = 128.
        #expect(p.upCodes.count == 128 * 16)
        #expect(p.upCodes[16] == 0x78)  // channel 1: 256 = 1.0 · 2^8 → exponent 15, mantissa 0
        #expect(p.upCodes[0] == 0x70)   // channel 0: 256 · c1/c0 = 128 → exponent 14

        var x = [Float](repeating: 0, count: 2 * 128)
        x[0] = 14; x[1] = -7; x[2] = 1
        let (codes, scales) = W4A4FastReference.quantize(x, lowRank: [Float](repeating: 0, count: 32), rows: 2, p)
        #expect(scales == [7 / 448, 0])
        // 7 · 64 = 448 → 0x7E; −3.5 · 64 = −224 → 0xF6; 0.5 · 64 = 32 → 0x60; the rest and row 1 are 0.
        #expect(Array(codes[0..<4]) == [0x7E, 0xF6, 0x60, 0x00])
        #expect(codes[4...].allSatisfy { $0 == 0 })

        let folded = W4A4FastReference.foldedWeights(weights.canonical.qweight, p)
        // q · s/c with s/c = 56: −448 → 0xFE; 392 rounds to 384 → 0x7C; 56 → 0x66; then the low-rank columns.
        #expect(Array(folded[0..<4]) == [0xFE, 0x7C, 0x66, 0x00])
        #expect(Array(folded[128..<144]) == Array(p.upCodes[0..<16]))

        let y = W4A4FastReference.multiply(codes: codes, scales: scales, weights: folded, rows: 2, p)
        let sum: Float = 448 * -448 + -224 * 384 + 32 * 56
        #expect(y[0] == ActivationDType.bf16.round(sum * (7 / 448) * p.channelScales[0] + 0.25))
        #expect(y[1] == -0.5 && y[2] == 0 && y[128] == 0.25 && y[129] == -0.5)
    }

    /// NVFP4, K = 128, N = 128, R = 16: micro-scales 0.5 everywhere except channel 0's groups 0 (1.0) and 1 (1.875);
    /// wtscale 0.25, wcscales 2 for channel 0 and 1 elsewhere. Channel 0's unit is the power of two above
    /// 1.875 · 6/448 = 0.0251: 1/32, so the fold factor is 0.5 · 32 = 16 per unit of twice the E2M1 value.
    @Test func handComputedNVFP4Folding() throws {
        let k = 128, n = 128, r = 16
        var codes = [UInt8](repeating: 0, count: n * k / 2)
        codes[0] = 0xD7  // k0 = code 7 (6), k1 = code 13 (−3)
        codes[1] = 0x38  // k2 = code 8 (−0), k3 = code 3 (1.5)
        codes[8] = 0x03  // k16 = code 3 (1.5), in group 1
        var scales = [UInt8](repeating: 0x30, count: k / 16 * n)  // 0.5
        scales[0] = 0x38  // 1.0
        scales[n] = 0x3F  // 1.875
        var wcscales = [Float](repeating: 1, count: n)
        wcscales[0] = 2
        let tensors = SVDQW4A4Tensors(
            qweight: try Tensor(shape: [n, k / 2], dtype: .u8, bytes: codes),
            wscales: try Tensor(shape: [k / 16, n], dtype: .f8e4m3fn, bytes: scales),
            wtscale: Tensor([0.25], shape: [1], dtype: .bf16), wcscales: Tensor(wcscales, shape: [n], dtype: .bf16),
            bias: nil, smooth: Tensor([Float](repeating: 1, count: k), shape: [k], dtype: .bf16),
            projDown: Tensor(zeros: [k, r], dtype: .bf16),
            projUp: Tensor([Float](repeating: 0.02, count: n * r), shape: [n, r], dtype: .bf16))
        let weights = try SVDQW4A4Weights(name: "tiny-nvfp4", tensors: tensors, layout: .canonical(vectorOrder: .natural))
        let p = try W4A4FastParameters(weights: weights, type: .bf16)
        // Channel 1: 0.5 · 6/448 = 0.0067 → 1/128.
        let units: [Float] = [0.03125, 0.0078125], channelScales: [Float] = [0.015625, 0.001953125]
        #expect(Array(p.weightUnits[0..<2]) == units)
        #expect(Array(p.channelScales[0..<2]) == channelScales)
        let folded = W4A4FastReference.foldedWeights(weights.canonical.qweight, p)
        // 12 · 16 = 192 → 0x74; −6 · 16 = −96 → 0xEC; −0 → 0x00 (not 0x80); 3 · 16 = 48 → 0x64;
        // 3 · 1.875 · 16 = 90 rounds to 88 → 0x6B (the folding's one lossy rounding).
        let expected: [UInt8] = [0x74, 0xEC, 0x00, 0x64]
        #expect(Array(folded[0..<4]) == expected)
        #expect(folded[16] == 0x6B)
        #expect(folded[4..<16].allSatisfy { $0 == 0 })
    }

    @Test(arguments: [W4A4SelfTestLayer.int4(128, 256), .int4(256, 128, unsigned: true), .nvfp4(128, 256), .nvfp4(256, 128)])
    func tracksTheDenseLayerMoreCloselyThanTheExactPath(layer: W4A4SelfTestLayer) throws {
        var random = SelfTestRandom(seed: 21)
        let weights = try W4A4SelfTestData.weights(layer, &random)
        let x = RandomTensor(shape: [16, layer.inFeatures], dtype: .bf16, range: layer.inputRange, seed: 22).tensor
        let p = try W4A4FastParameters(weights: weights, type: .bf16)
        let fast = W4A4FastReference.forward(x.floats(), rows: 16, qweight: weights.canonical.qweight, p)
        let exact = try SVDQW4A4Linear(weights: weights).forward(x).floats()
        let dense = try weights.denseForward(x)
        func error(_ values: [Float]) -> Double {
            let difference = zip(values, dense).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            return (difference / dense.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
        }
        #expect(error(fast) < 0.06, "fast vs dense \(error(fast))")
        #expect(error(fast) < error(exact), "fast \(error(fast)) vs exact \(error(exact))")
    }

    @Test func refusesWhatTheFastPathCannotRun() throws {
        var random = SelfTestRandom(seed: 5)
        let nvfp4 = try W4A4SelfTestData.weights(.nvfp4(128, 128), &random)
        var zeroChannel = nvfp4.canonical
        var wcscales = zeroChannel.wcscales!.floats()
        wcscales[3] = 0
        zeroChannel.wcscales = Tensor(wcscales, shape: [128], dtype: .bf16)
        let zeroWeights = try SVDQW4A4Weights(name: "zero-wcscale", tensors: zeroChannel, layout: .canonical(vectorOrder: .natural))
        #expect { try W4A4FastParameters(weights: zeroWeights, type: .bf16) } throws: { error in
            "\(error)".contains("zero-wcscale.wcscales") && "\(error)".contains("element 3")
        }
        let tiny = try Self.tinyLayer()
        let tensors = SVDQW4A4Tensors(
            qweight: tiny.canonical.qweight, wscales: tiny.canonical.wscales, bias: tiny.canonical.bias,
            smooth: tiny.canonical.smooth, projDown: Tensor(zeros: [128, 272], dtype: .bf16), projUp: Tensor(zeros: [128, 272], dtype: .bf16))
        let rank272 = try SVDQW4A4Weights(name: "rank272", tensors: tensors, layout: .canonical(vectorOrder: .natural))
        #expect(throws: NunchakuError.self) { try W4A4FastParameters(weights: rank272, type: .bf16) }
    }

    @Test func selfTestCasesCoverEveryFluxLayer() {
        let linear = SelfTestCatalog.cases.filter { $0.kernel == "w4a4.fast.linear" && $0.dtype == .bf16 }.map(\.shape)
        for (k, n) in [(3072, 3072), (3072, 9216), (3072, 12288), (12288, 3072), (3072, 15360)] {
            #expect(linear.contains { $0.contains("N=\(n) K=\(k)") && $0.contains("M=4608") }, "N=\(n) K=\(k)")
        }
        for kernel in ["w4a4.fast.quantize", "w4a4.fast.weights"] {
            #expect(SelfTestCatalog.cases.contains { $0.kernel == kernel })
        }
        #expect(SelfTestCatalog.cases.contains { $0.kernel == "w4a4.fast.linear" && $0.shape.hasPrefix("nvfp4") })
        #expect(SelfTestCatalog.cases.contains { $0.kernel == "w4a4.fast.weights" && $0.shape.hasPrefix("nvfp4") })
    }
}
