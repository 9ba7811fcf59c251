import CUDABackend
import NunchakuCore
import SVDQuant
@testable import SelfTest
import Testing

/// Layers sharing one fast W4A4 activation pass, without a GPU: the load-time decision
/// (`CUDAW4A4FastSharedInput.canShare(_:type:)`), the identical codes that make sharing exact, and agreement of the
/// shared forward with the dense layers.
@Suite struct W4A4FastSharedInputTests {
    /// Random INT4 layers of K = 128 (N = 256, R = 32 and N = 128, R = 16), the second with the first's smoothing.
    static func pair(seed: UInt64 = 31) throws -> [SVDQW4A4Weights] {
        var random = SelfTestRandom(seed: seed)
        let first = try W4A4SelfTestData.weights(.int4(128, 256), &random)
        var second = try W4A4SelfTestData.weights(.int4(128, 128, rank: 16), &random).canonical
        second.smooth = first.canonical.smooth
        return [first, try SVDQW4A4Weights(name: "second", tensors: second, layout: .canonical(vectorOrder: .natural))]
    }

    static func replacingSmooth(_ weights: SVDQW4A4Weights, element: Int, by factor: Float, actUnsigned: Bool = false) throws -> SVDQW4A4Weights {
        var tensors = weights.canonical
        var smooth = tensors.smooth.floats()
        smooth[element] *= factor
        tensors.smooth = Tensor(smooth, shape: [smooth.count], dtype: .bf16)
        return try SVDQW4A4Weights(name: weights.name, tensors: tensors, layout: .canonical(vectorOrder: .natural), actUnsigned: actUnsigned)
    }

    @Test func layersShareOnlyWithBitIdenticalSmoothingAndTheSameInput() throws {
        let pair = try Self.pair()
        #expect(CUDAW4A4FastSharedInput.canShare(pair, type: .bf16))
        #expect(!CUDAW4A4FastSharedInput.canShare([pair[0]], type: .bf16), "one layer shares nothing")
        // One factor one bf16 step off (1 + 2⁻⁷) is another vector; a factor of 1 + 2⁻¹² rounds back to the same bf16.
        let oneStep = try Self.replacingSmooth(pair[1], element: 77, by: 1 + 1 / 128)
        #expect(!CUDAW4A4FastSharedInput.canShare([pair[0], oneStep], type: .bf16))
        let sameBF16 = try Self.replacingSmooth(pair[1], element: 77, by: 1 + 1 / 4096)
        #expect(CUDAW4A4FastSharedInput.canShare([pair[0], sameBF16], type: .bf16))
        let unsigned = try Self.replacingSmooth(pair[1], element: 0, by: 1, actUnsigned: true)
        #expect(!CUDAW4A4FastSharedInput.canShare([pair[0], unsigned], type: .bf16), "a GELU-fed layer shifts its input")
        var random = SelfTestRandom(seed: 3)
        let wider = try W4A4SelfTestData.weights(.int4(256, 128), &random)
        #expect(!CUDAW4A4FastSharedInput.canShare([pair[0], wider], type: .bf16), "another K")
        // The ranks no longer matter: the low-rank branches live in each layer's weights.
        var tensors = try W4A4SelfTestData.weights(.int4(128, 128, rank: 144), &random).canonical
        tensors.smooth = pair[0].canonical.smooth
        let big = try SVDQW4A4Weights(name: "big", tensors: tensors, layout: .canonical(vectorOrder: .natural))
        #expect(CUDAW4A4FastSharedInput.canShare([pair[0], big, big], type: .bf16), "three layers, 320 low-rank columns in all")
    }

    /// Layers that may share quantize their input to the same codes and scales (so one pass serves all of them, and
    /// each alone computes the same output); another smoothing gives other codes.
    @Test func sharingLayersQuantizeToTheSameCodes() throws {
        let pair = try Self.pair()
        let p = try pair.map { try W4A4FastParameters(weights: $0, type: .bf16) }
        let x = RandomTensor(shape: [8, 128], dtype: .bf16, range: -1...1, seed: 12).tensor.floats()
        let codes = p.map { W4A4FastReference.quantize(x, rows: 8, $0) }
        #expect(codes[0].codes == codes[1].codes && codes[0].scales == codes[1].scales)
        let other = try W4A4FastParameters(weights: try Self.replacingSmooth(pair[1], element: 5, by: 2), type: .bf16)
        #expect(W4A4FastReference.quantize(x, rows: 8, other).codes != codes[0].codes)
        let shared = W4A4FastReference.sharedForward(x, rows: 8, layers: zip(pair, p).map { ($0.canonical.qweight, $1) })
        for (layer, output) in zip(zip(pair, p), shared) {
            #expect(output == W4A4FastReference.forward(x, rows: 8, qweight: layer.0.canonical.qweight, layer.1))
        }
    }

    @Test func theSharedForwardTracksBothDenseLayers() throws {
        let pair = try Self.pair()
        let p = try pair.map { try W4A4FastParameters(weights: $0, type: .bf16) }
        let x = RandomTensor(shape: [16, 128], dtype: .bf16, range: -1...1, seed: 9).tensor
        let outputs = W4A4FastReference.sharedForward(x.floats(), rows: 16, layers: zip(pair, p).map { ($0.canonical.qweight, $1) })
        for (weights, output) in zip(pair, outputs) {
            let dense = try weights.denseForward(x)
            let difference = zip(output, dense).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            let error = (difference / dense.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
            // Measured 2.8e-2 for both layers; 1.5× margin.
            #expect(output.count == 16 * weights.outFeatures && error < 0.045, "\(weights.name): shared vs dense \(error)")
        }
    }

    @Test func selfTestCasesCoverBothPrecisionsAndARaggedBatch() {
        let shapes = SelfTestCatalog.cases.filter { $0.kernel == "w4a4.fast.shared_input" }.map { "\($0.dtype) \($0.shape)" }
        for expected in ["bf16 int4 M=4608", "f16 int4 M=333", "bf16 nvfp4 M=4608", "f16 nvfp4 M=77"] {
            #expect(shapes.contains { $0.hasPrefix(expected) }, "\(expected) in \(shapes)")
        }
    }
}
