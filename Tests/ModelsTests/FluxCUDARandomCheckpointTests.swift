import Foundation
import Testing
import CPUBackend
import NunchakuCore
import SVDQuant
@testable import Models

/// The random-weight FLUX checkpoints behind `run-transformer --random-weights` and the `flux.transformer` selftest:
/// reproducible, shaped and typed like the checkpoints they stand for, with magnitudes that keep a forward sane.
struct FluxCUDARandomCheckpointTests {
    /// 1 + 1 blocks, one head of 128: the smallest model with FLUX's head dimension.
    static let micro = FluxConfig(numLayers: 1, numSingleLayers: 1, attentionHeadDim: 128, numAttentionHeads: 1,
                                  jointAttentionDim: 128, pooledProjectionDim: 64, guidanceEmbeds: true)

    static func spec(_ name: String, _ k: Int, _ n: Int, _ quantization: LinearLayerSpec.Quantization = .w4a4(inputFollowsGELU: false)) throws -> LinearLayerSpec {
        LinearLayerSpec(name: name, inFeatures: k, outFeatures: n, quantization: quantization)
    }

    @Test func theSameSeedGivesTheSameWeightsAndAnotherSeedOthers() throws {
        let spec = try Self.spec("transformer_blocks.0.qkv_proj", 256, 384)
        func codes(_ seed: UInt64) throws -> [UInt8] {
            guard case let .w4a4(weights) = try FluxRandomCheckpoint(config: Self.micro, format: .int4, seed: seed).hostLinear(spec) else {
                Issue.record("not a W4A4 layer")
                return []
            }
            return weights.canonical.qweight.withUnsafeBytes { Array($0) }
        }
        let first = try codes(7)
        #expect(first.count == 384 * 128)
        #expect(try codes(7) == first)
        #expect(try codes(8) != first)
        // Both nibbles of a byte take all 16 codes.
        #expect(Set(first.map { $0 & 0xF }).count == 16 && Set(first.map { $0 >> 4 }).count == 16)
    }

    @Test func int4LayersAreWhatANunchakuCheckpointHolds() throws {
        let checkpoint = try FluxRandomCheckpoint(config: Self.micro, format: .int4)
        #expect(checkpoint.layout == .nunchaku && checkpoint.precision == .int4)
        guard case let .w4a4(qkv) = try checkpoint.hostLinear(try Self.spec("transformer_blocks.0.qkv_proj", 128, 384)),
              case let .w4a4(fc2) = try checkpoint.hostLinear(
                try Self.spec("transformer_blocks.0.mlp_fc2", 512, 128, .w4a4(inputFollowsGELU: true))),
              case let .awq(modulation) = try checkpoint.hostLinear(
                try Self.spec("transformer_blocks.0.norm1.linear", 128, 768, .awqW4A16)),
              case let .dense(weight, bias) = try checkpoint.hostLinear(try Self.spec("x_embedder", 64, 128, .none))
        else {
            Issue.record("a layer came out in the wrong form")
            return
        }
        #expect(qkv.precision == .int4 && !qkv.actUnsigned && qkv.rank == 32 && qkv.weightDType == .bf16)
        #expect(fc2.actUnsigned, "INT4 layers fed by GELU quantize unsigned")
        // Stored interleaved (channel d·6 + s is chunk s), with the +1 of the scale chunks 1 and 4 folded into the bias.
        let biases = modulation.canonical.bias!.floats()
        for chunk in 0..<6 {
            let mean = stride(from: chunk, to: 768, by: 6).reduce(Float(0)) { $0 + biases[$1] } / 128
            #expect(abs(mean - ([1, 4].contains(chunk) ? 1 : 0)) < 0.05, "chunk \(chunk) bias mean \(mean)")
        }
        #expect(weight.shape == [128, 64] && weight.dtype == .bf16 && bias.shape == [128])
    }

    @Test func nvfp4LayersScaleLikeNunchakusConverter() throws {
        let checkpoint = try FluxRandomCheckpoint(config: Self.micro, format: .nvfp4)
        guard case let .w4a4(qkv) = try checkpoint.hostLinear(try Self.spec("single_transformer_blocks.0.qkv_proj", 128, 384)),
              case let .w4a4(out) = try checkpoint.hostLinear(try Self.spec("single_transformer_blocks.0.out_proj", 128, 128)),
              case let .w4a4(fc2) = try checkpoint.hostLinear(
                try Self.spec("single_transformer_blocks.0.mlp_fc2", 512, 128, .w4a4(inputFollowsGELU: true)))
        else {
            Issue.record("a layer came out in the wrong form")
            return
        }
        #expect(qkv.precision == .nvfp4 && qkv.canonical.wcscales != nil && qkv.wtscale == 1, "fused QKV: per-channel scales")
        #expect(out.canonical.wcscales == nil && out.wtscale != 1, "other layers: a per-tensor scale")
        #expect(!fc2.actUnsigned, "NVFP4 has no unsigned activations")
    }

    @Test func bf16ModelsAreDenseInTheDiffusersLayout() throws {
        let checkpoint = try FluxRandomCheckpoint(config: Self.micro, format: .bf16)
        #expect(checkpoint.layout == .diffusers && checkpoint.precision == nil)
        guard case let .dense(weight, _) = try checkpoint.hostLinear(try Self.spec("transformer_blocks.0.attn.to_q", 128, 128, .none)) else {
            Issue.record("not dense")
            return
        }
        let bound = 1 / Float(128).squareRoot()
        #expect(weight.floats().allSatisfy { abs($0) <= bound * 1.01 })
        #expect(checkpoint.tensors.keys.contains("transformer_blocks.0.attn.norm_q.weight"))
    }

    /// The dense equivalent of a random W4A4 layer has an RMS of order 1/√K, like a trained layer's.
    @Test(arguments: [SVDQuantPrecision.int4, .nvfp4])
    func quantizedWeightsHaveSensibleMagnitudes(precision: SVDQuantPrecision) throws {
        let (k, n) = (512, 256)
        let checkpoint = try FluxRandomCheckpoint(config: Self.micro, format: precision == .int4 ? .int4 : .nvfp4)
        guard case let .w4a4(layer) = try checkpoint.hostLinear(try Self.spec("transformer_blocks.0.out_proj", k, n)) else {
            Issue.record("not a W4A4 layer")
            return
        }
        let weight = layer.effectiveWeight()
        let rms = (weight.reduce(0) { $0 + Double($1) * Double($1) } / Double(weight.count)).squareRoot() * Double(k).squareRoot()
        #expect(rms > 0.4 && rms < 1.6, "RMS·√K = \(rms)")
    }

    @Test func shapesW4A4CannotHoldAreRefused() throws {
        let narrow = FluxConfig(numLayers: 1, numSingleLayers: 1, attentionHeadDim: 64, numAttentionHeads: 3, axesDimsRope: [16, 24, 24])
        #expect { try FluxRandomCheckpoint(config: narrow, format: .int4) } throws: { "\($0)".contains("width (heads × head dim) 192") }
        _ = try FluxRandomCheckpoint(config: narrow, format: .bf16)
        #expect { try FluxRandomCheckpoint(config: Self.micro, format: .nvfp4, rank: 24) } throws: { "\($0)".contains("rank 24") }
        let int4 = try FluxRandomCheckpoint(config: Self.micro, format: .int4)
        #expect { try FluxTransformer(random: int4, computeDType: .f32) } throws: { "\($0)".contains("compute in bf16") }
    }

    /// The CPU model of a random checkpoint loads strictly (every tensor used) and gives a finite output of order 1.
    @Test(arguments: FluxRandomCheckpoint.Format.allCases)
    func cpuForwardOfARandomModelIsSane(format: FluxRandomCheckpoint.Format) throws {
        let model = try FluxTransformer(random: try FluxRandomCheckpoint(config: Self.micro, format: format, seed: 3))
        let inputs = try FluxRandomInputs.make(config: Self.micro, batch: 1, imageTokens: 8, textTokens: 4, seed: 3)
        let sample = try model.forward(inputs: inputs).floats()
        let rms = (sample.reduce(0) { $0 + Double($1) * Double($1) } / Double(sample.count)).squareRoot()
        #expect(sample.count == 8 * 64 && sample.allSatisfy(\.isFinite))
        #expect(rms > 0.05 && rms < 20, "rms \(rms)")
    }
}
