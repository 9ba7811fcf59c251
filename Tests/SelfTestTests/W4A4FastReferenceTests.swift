import CUDABackend
import NunchakuCore
import SVDQuant
@testable import SelfTest
import Testing

/// The CPU reference of the fast (FP8) W4A4 path, without a GPU: hand-computed codes, scales, folded weights and
/// one output; agreement with the dense equivalent of random layers (independent of every rounding choice); the
/// layers it refuses; and the self-test cases that check the GPU against it.
/// The CPU reference of the fast (FP8) W4A4 path, without a GPU: hand-computed codes, scales, folded weights (the
/// low-rank branch and the scales folded in), units, the shifted layers' bias and one output; agreement with the
/// dense equivalent of random layers (independent of every rounding choice); the layers it refuses; and the
/// self-test cases that check the GPU against it.
@Suite struct W4A4FastReferenceTests {
    /// K = 128, N = 128, R = 16 (the smallest layer the validation accepts). Row 0 of x is (14, −7, 1, 0, …) with
    /// smoothing 2, so t = (7, −3.5, 0.5, 0, …); row 1 is 0. Channel 0 has codes (−8, 7, 1, 0, …) and group scale
    /// 0.01 (bf16 0.010009765625) in group 0; every other scale is 0.005 (bf16 0.0050048828125) and every other code
    /// 0. proj_down has (0.5, 0.25) in column 0 of rows 0 and 1 (smoothed: 1, 0.5), proj_up 0.125 (channel 0) and −1
    /// (channel 1) in column 0; everything else is 0.
    static func tinyLayer(shifted: Bool = false) throws -> SVDQW4A4Weights {
        let k = 128, n = 128, r = 16
        var codes = [UInt8](repeating: 0, count: n * k / 2)
        codes[0] = 0x78  // k0 = −8 (nibble 8), k1 = 7
        codes[1] = 0x01  // k2 = 1
        var scales = [Float](repeating: 0.005, count: 2 * n)
        scales[0] = 0.01
        var bias = [Float](repeating: 0, count: n)
        bias[0] = 0.25
        bias[1] = -0.5
        var down = [Float](repeating: 0, count: k * r), up = [Float](repeating: 0, count: n * r)
        down[0] = 0.5
        down[r] = 0.25
        up[0] = 0.125
        up[r] = -1
        let tensors = SVDQW4A4Tensors(
            qweight: try Tensor(shape: [n, k / 2], dtype: .u8, bytes: codes),
            wscales: Tensor(scales, shape: [2, n], dtype: .bf16),
            bias: Tensor(bias, shape: [n], dtype: .bf16),
            smooth: Tensor([Float](repeating: 2, count: k), shape: [k], dtype: .bf16),
            projDown: Tensor(down, shape: [k, r], dtype: .bf16),
            projUp: Tensor(up, shape: [n, r], dtype: .bf16))
        return try SVDQW4A4Weights(name: "tiny", tensors: tensors, layout: .canonical(vectorOrder: .natural), actUnsigned: shifted)
    }

    @Test func handComputedCodesScalesWeightsAndOutput() throws {
        let weights = try Self.tinyLayer()
        let p = try W4A4FastParameters(weights: weights, type: .bf16)
        // u[n] = (8 · max_g |s| · f + Σ_r |up| · max_k |down'|) / 448: channel 0 (8 · 0.010009765625 + 0.125 · 1) / 448 =
        // 15/32768 exactly; channel 1 (8 · 0.0050048828125 + 1 · 1) / 448 = 1.0400390625 / 448, rounded to fp32.
        #expect(p.gemmDepth == 128 && p.rowFactors.allSatisfy { $0 == 1 })
        #expect(Array(p.channelScales[0..<2]) == [15 / 32768, Float(1.0400390625 / 448)])
        #expect(Array(p.inverseUnits[0..<2]) == [1 / (Float(15) / 32768), 1 / Float(1.0400390625 / 448)])
        #expect(p.channelScales[2...].allSatisfy { $0 == Float(8 * 0.0050048828125 / 448) })
        #expect(p.smoothedProjDown[0] == 1 && p.smoothedProjDown[16] == 0.5 && p.smoothedProjDown.filter { $0 != 0 }.count == 2)
        #expect(Array(p.bias![0..<2]) == [0.25, -0.5], "an unshifted layer keeps its bias")

        var x = [Float](repeating: 0, count: 2 * 128)
        x[0] = 14; x[1] = -7; x[2] = 1
        let (codes, scales) = W4A4FastReference.quantize(x, rows: 2, p)
        #expect(scales == [7 / 448, 0])
        // 7 · 64 = 448 → 0x7E; −3.5 · 64 = −224 → 0xF6; 0.5 · 64 = 32 → 0x60; the rest and row 1 are 0.
        #expect(Array(codes[0..<4]) == [0x7E, 0xF6, 0x60, 0x00])
        #expect(codes[4...].allSatisfy { $0 == 0 })

        let folded = W4A4FastReference.foldedWeights(weights.canonical.qweight, p)
        // Channel 0, (v · s0 + L) · 32768/15 with L = 0.125 · (1, 0.5, 0, …): (−0.080078125 + 0.125) · 2184.53 = 98.1
        // → 96 (0x6C); (0.070068359375 + 0.0625) · 2184.53 = 289.6 → 288 (0x79); 0.010009765625 · 2184.53 = 21.9 → 22
        // (0x5B). Channel 1, codes 0 and L = −1 · (1, 0.5): −448 / 1.0400390625 = −430.75 → −416 (0xFD); −215.4 →
        // −208 (0xF5).
        #expect(Array(folded[0..<4]) == [0x6C, 0x79, 0x5B, 0x00])
        #expect(folded[4..<128].allSatisfy { $0 == 0 })
        #expect(Array(folded[128..<130]) == [0xFD, 0xF5] && folded[130..<256].allSatisfy { $0 == 0 })
        #expect(folded[256...].allSatisfy { $0 == 0 })

        let y = W4A4FastReference.multiply(codes: codes, scales: scales, weights: folded, rows: 2, p)
        let sum: Float = 448 * 96 + -224 * 288 + 32 * 22
        #expect(y[0] == ActivationDType.bf16.round(sum * (7 / 448) * p.channelScales[0] + 0.25))
        #expect(y[1] == ActivationDType.bf16.round(448 * -416 * (7 / 448) * p.channelScales[1] + -224 * -208 * (7 / 448) * p.channelScales[1] - 0.5))
        #expect(y[2] == 0 && y[128] == 0.25 && y[129] == -0.5)
    }

    /// The shifted layer's low-rank branch used to see the unshifted x: its bias takes −0.171875 · Σ_r up[n, r] ·
    /// Σ_k proj_down[k, r] (the original proj_down: column 0 sums to 0.75). Channel 0: 0.25 − 0.171875 · 0.125 · 0.75
    /// = 0.23388671875 → bf16 0.234375; channel 1: −0.5 + 0.171875 · 0.75 = −0.37109375 (exact); channel 2, whose
    /// bias and proj_up are 0, keeps 0. The folded weights do not depend on the shift; the codes take it.
    @Test func shiftedLayersCorrectTheirBias() throws {
        let shifted = try W4A4FastParameters(weights: try Self.tinyLayer(shifted: true), type: .bf16)
        let plain = try W4A4FastParameters(weights: try Self.tinyLayer(), type: .bf16)
        #expect(shifted.shifted && Array(shifted.bias![0..<3]) == [0.234375, -0.37109375, 0])
        #expect(shifted.inverseUnits == plain.inverseUnits && shifted.smoothedProjDown == plain.smoothedProjDown)
        var x = [Float](repeating: 0, count: 128)
        x[0] = 14
        let codes = W4A4FastReference.quantize(x, rows: 1, shifted)
        // t = (x + 0.171875) / 2: 7.0859375 first, 0.0859375 everywhere else.
        #expect(codes.scales == [7.0859375 / 448])
        #expect(codes.codes[1] == FloatFormats.e4m3fnBits(0.0859375 * (448 / 7.0859375), saturating: true) && codes.codes[1] != 0)
        // Without bias, a shifted layer gets the correction as its bias.
        var tensors = try Self.tinyLayer(shifted: true).canonical
        tensors.bias = nil
        let unbiased = try W4A4FastParameters(
            weights: try SVDQW4A4Weights(name: "tiny", tensors: tensors, layout: .canonical(vectorOrder: .natural), actUnsigned: true), type: .bf16)
        #expect(Array(unbiased.bias![0..<3]) == [ActivationDType.bf16.round(Float(-0.171875 * 0.125 * 0.75)), 0.12890625, 0])
    }

    /// NVFP4, K = 128, N = 128, R = 16: micro-scales 0.5 everywhere except channel 0's groups 0 (1.0) and 1 (1.875);
    /// wtscale 0.25, wcscales 2 for channel 0 and 1 elsewhere, proj_down 0. Row factors 0.5 · 0.25 · wcscales: 0.25
    /// and 0.125; channel 0's unit (12 · 1.875 · 0.25) / 448 = 5.625 / 448, so a code's value v becomes
    /// v · s · 0.25 · 448 / 5.625.
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
        #expect(Array(p.rowFactors[0..<2]) == [0.25, 0.125])
        // Channel 1: 12 · 0.5 · 0.125 / 448.
        #expect(Array(p.channelScales[0..<2]) == [Float(5.625 / 448), Float(0.75 / 448)])
        #expect(p.bias == nil)
        let folded = W4A4FastReference.foldedWeights(weights.canonical.qweight, p)
        // 12 · 0.25 · 79.64 = 238.9 → 240 (0x77); −6 · 0.25 · 79.64 = −119.5 → −120 (0xEF); −0 → 0x00 (not 0x80);
        // 3 · 0.25 · 79.64 = 59.7 → 60 (0x67); 3 · 1.875 · 0.25 · 79.64 = 112 (0x6E).
        #expect(Array(folded[0..<4]) == [0x77, 0xEF, 0x00, 0x67])
        #expect(folded[16] == 0x6E)
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
        // Measured 2.0e-2 … 3.0e-2 against the dense layer (exact: 2.9e-2 … 8.2e-2); 1.5× margin.
        #expect(error(fast) < 0.045, "fast vs dense \(error(fast))")
        #expect(error(fast) < error(exact), "fast \(error(fast)) vs exact \(error(exact))")
    }

    /// Refused: a row factor `0.5 · wtscale · wcscales[n]` that overflows fp32, a `smooth · proj_down` product that
    /// overflows the type (300 · 300 is finite in bf16, not in f16), a rank above 256. A zero `wcscales` element is
    /// fine now: the channel keeps its low-rank branch.
    @Test func refusesWhatTheFastPathCannotRun() throws {
        var random = SelfTestRandom(seed: 5)
        let nvfp4 = try W4A4SelfTestData.weights(.nvfp4(128, 128), &random)
        func replacing(wcscale: Float, wtscale: Float = 0.25) throws -> SVDQW4A4Weights {
            var tensors = nvfp4.canonical
            var wcscales = tensors.wcscales!.floats()
            wcscales[3] = wcscale
            tensors.wcscales = Tensor(wcscales, shape: [128], dtype: .bf16)
            tensors.wtscale = Tensor([wtscale], shape: [1], dtype: .bf16)
            return try SVDQW4A4Weights(name: "wide-wcscale", tensors: tensors, layout: .canonical(vectorOrder: .natural))
        }
        let zero = try W4A4FastParameters(weights: try replacing(wcscale: 0), type: .bf16)
        #expect(zero.rowFactors[3] == 0 && zero.channelScales[3] > 0)
        #expect { try W4A4FastParameters(weights: try replacing(wcscale: 1e10, wtscale: 1e30), type: .bf16) } throws: { error in
            "\(error)".contains("wide-wcscale.wcscales") && "\(error)".contains("element 3")
        }

        var tensors = try Self.tinyLayer().canonical
        var smooth = tensors.smooth.floats(), down = tensors.projDown.floats()
        smooth[5] = 300
        down[5 * 16 + 2] = 300
        tensors.smooth = Tensor(smooth, shape: [128], dtype: .bf16)
        tensors.projDown = Tensor(down, shape: [128, 16], dtype: .bf16)
        let large = try SVDQW4A4Weights(name: "large", tensors: tensors, layout: .canonical(vectorOrder: .natural))
        #expect(try W4A4FastParameters(weights: large, type: .bf16).smoothedProjDown[5 * 16 + 2] == 90112, "90000 in bf16")
        #expect { try W4A4FastParameters(weights: large, type: .f16) } throws: { error in
            "\(error)".contains("large.proj_down") && "\(error)".contains("[5, 2]")
        }

        let tiny = try Self.tinyLayer()
        let rankTensors = SVDQW4A4Tensors(
            qweight: tiny.canonical.qweight, wscales: tiny.canonical.wscales, bias: tiny.canonical.bias,
            smooth: tiny.canonical.smooth, projDown: Tensor(zeros: [128, 272], dtype: .bf16), projUp: Tensor(zeros: [128, 272], dtype: .bf16))
        let rank272 = try SVDQW4A4Weights(name: "rank272", tensors: rankTensors, layout: .canonical(vectorOrder: .natural))
        #expect { try W4A4FastParameters(weights: rank272, type: .bf16) } throws: { error in "\(error)".contains("rank272") && "\(error)".contains("rank 272") }
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
