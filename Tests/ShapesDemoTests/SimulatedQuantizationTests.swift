import NunchakuCore
import Quantizer
@testable import ShapesDemo
import Testing

struct SimulatedQuantizationTests {
    @Test func rolesOfTheDiffusersLinears() {
        #expect(FluxLinearRole(name: "x_embedder", inFeatures: 64) == .outsideBlocks)
        #expect(FluxLinearRole(name: "proj_out", inFeatures: 256) == .outsideBlocks)
        #expect(FluxLinearRole(name: "transformer_blocks.0.norm1.linear", inFeatures: 256) == .modulation)
        #expect(FluxLinearRole(name: "single_transformer_blocks.3.norm.linear", inFeatures: 256) == .modulation)
        #expect(FluxLinearRole(name: "transformer_blocks.1.ff_context.net.2", inFeatures: 1024)
                == .projection([ActivationSegment(columns: 0..<1024, postGELU: true)]))
        #expect(FluxLinearRole(name: "single_transformer_blocks.0.proj_out", inFeatures: 1280)
                == .projection([ActivationSegment(columns: 0..<256, postGELU: false), ActivationSegment(columns: 256..<1280, postGELU: true)]))
        #expect(FluxLinearRole(name: "transformer_blocks.0.attn.to_q", inFeatures: 256)
                == .projection([ActivationSegment(columns: 0..<256, postGELU: false)]))
    }

    /// The naive W4A4 layer equals the Quantizer's runtime simulation of an RTN-only SVDQuant layer (rank 0, no
    /// smoothing) on random inputs.
    @Test func naiveLayerMatchesTheRuntimeSimulationOfRTN() throws {
        let (n, k, rows) = (128, 256, 6)
        var random = SplitMix64(seed: 7)
        func uniform() -> Float { Float(Double(random.next() >> 11) / Double(1 << 53)) * 2 - 1 }
        let weight = (0..<(n * k)).map { _ in uniform() * 0.1 }
        let bias = (0..<n).map { _ in uniform() }
        let x = (0..<(rows * k)).map { _ in uniform() * 3 }
        for postGELU in [false, true] {
            let input = postGELU ? x.map { max($0, -0.17) } : x
            let rtn = try SVDQuantizer.quantize(
                W4A4LayerInput(name: "layer", weight: weight, outFeatures: n, inFeatures: k, bias: bias, calibration: nil,
                               inputKind: postGELU ? .postGELU : .general),
                configuration: SVDQuantConfiguration(format: .int4, rank: 0, smoothing: false))
            let expected = try W4A4RuntimeSimulation.output(of: rtn, input: input, rows: rows)
            let layer = try SimulatedLinear.naiveW4A4(
                name: "layer", weight: weight, bias: bias, outFeatures: n, inFeatures: k,
                segments: [ActivationSegment(columns: 0..<k, postGELU: postGELU)])
            let output = try layer.forward(Tensor(input, shape: [rows, k])).floatValues(context: "output")
            let scale = expected.map(abs).max()!
            let difference = zip(output, expected).map { abs($0 - $1) }.max()!
            #expect(difference <= 1e-3 * scale, "postGELU \(postGELU): \(difference) vs scale \(scale)")
        }
    }
}
