import Foundation
import Testing
import CPUBackend
import NunchakuCore
@testable import Models

/// The FLUX transformer against diffusers on small random-weight models (fixtures made by
/// scripts/parity/flux_transformer_reference.py): dev (guidance, head dim 64), schnell (no guidance, head dim 32) and
/// canny (in_channels 128, out_channels 64, head dim 128 with the real RoPE axes).
struct FluxParityTests {
    @Test(arguments: ["dev", "schnell", "canny"])
    func float32MatchesDiffusers(variant: String) throws {
        let fixture = try FluxFixture(variant: variant)
        let model = try FluxTransformer(config: fixture.config, weights: fixture.weights, source: "flux-\(variant)")
        let clock = ContinuousClock()
        var sample = try fixture.run(model)
        let elapsed = try clock.measure { sample = try fixture.run(model) }
        let expected = try fixture.file("sample")
        #expect(sample.shape == expected.shape)
        #expect(sample.dtype == .f32)
        let error = Comparison.relativeError(sample.floats(), expected.floats())
        print("flux-\(variant) f32: relative error \(error) against diffusers fp32; forward \(elapsed)")
        #expect(error <= 1e-5, "\(variant): relative error \(error) against diffusers fp32")
    }

    @Test(arguments: ["dev", "schnell", "canny"])
    func nunchakuLayoutMatchesDiffusers(variant: String) throws {
        let fixture = try FluxFixture(variant: variant)
        let converted = try FluxNunchakuLayout.convert(diffusers: fixture.weights, config: fixture.config)
        #expect(converted["transformer_blocks.0.qkv_proj.weight"]?.shape == [3 * fixture.config.innerDim, fixture.config.innerDim])
        #expect(converted["single_transformer_blocks.1.mlp_fc2.weight"]?.shape == [fixture.config.innerDim, fixture.config.mlpHiddenDim])
        let model = try FluxTransformer(config: fixture.config, weights: converted, layout: .nunchaku, source: "flux-\(variant) nunchaku")
        let error = Comparison.relativeError(try fixture.run(model).floats(), try fixture.file("sample").floats())
        print("flux-\(variant) nunchaku layout f32: relative error \(error) against diffusers fp32")
        #expect(error <= 1e-5, "\(variant): relative error \(error) of the Nunchaku layout against diffusers fp32")
    }

    /// bf16 rounds every op output, so it lands about as far from fp32 as diffusers' own bf16 run, and much closer to
    /// that run than either is to fp32 (both round the same values at nearly the same points).
    @Test(arguments: ["dev", "schnell", "canny"])
    func bfloat16StaysAsCloseAsDiffusersBFloat16(variant: String) throws {
        let fixture = try FluxFixture(variant: variant)
        let model = try FluxTransformer(config: fixture.config, weights: fixture.weights, computeDType: .bf16)
        let sample = try fixture.run(model)
        #expect(sample.dtype == .bf16)
        let reference = try fixture.file("sample").floats(), diffusersBF16 = try fixture.file("sample_bf16").floats()
        let ours = Comparison.relativeError(sample.floats(), reference)
        let theirs = Comparison.relativeError(diffusersBF16, reference)
        let between = Comparison.relativeError(sample.floats(), diffusersBF16)
        print("flux-\(variant) bf16: ours vs fp32 \(ours), diffusers bf16 vs fp32 \(theirs), ours vs diffusers bf16 \(between)")
        #expect(ours <= 1.25 * theirs + 5e-3, "\(variant): bf16 relative error \(ours), diffusers bf16 has \(theirs)")
        #expect(between <= 2e-2, "\(variant): bf16 relative error \(between) against diffusers bf16")
        #expect(ours > 1e-4, "\(variant): a bf16 run should differ from fp32")
    }
}
