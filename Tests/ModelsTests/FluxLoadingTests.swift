import Foundation
import Testing
import CPUBackend
import NunchakuCore
@testable import Models

/// Strict loading, configs, argument checks, and the layer factory seam.
struct FluxLoadingTests {
    @Test func everyProblemIsListedInOneError() throws {
        let fixture = try FluxFixture(variant: "schnell")
        var weights = fixture.weights
        weights["transformer_blocks.0.attn.to_q.weight"] = nil
        weights["single_transformer_blocks.1.proj_mlp.bias"] = nil
        weights["extra.weight"] = Tensor([1], shape: [1])
        weights["proj_out.bias"] = Tensor(zeros: [3], dtype: .f32)
        weights["transformer_blocks.1.attn.norm_q.weight"] = Tensor(zeros: [fixture.config.attentionHeadDim], dtype: .i32)
        let error = try #require(throws: WeightLoadingError.self) {
            try FluxTransformer(config: fixture.config, weights: weights, source: "broken.safetensors")
        }
        #expect(error.source == "broken.safetensors")
        #expect(error.missing == ["single_transformer_blocks.1.proj_mlp.bias", "transformer_blocks.0.attn.to_q.weight"])
        #expect(error.unexpected == ["extra.weight"])
        #expect(error.mismatched == [.init(name: "proj_out.bias", expected: [fixture.config.outputFeatures], actual: [3])])
        #expect(error.unusable.map(\.name) == ["transformer_blocks.1.attn.norm_q.weight"])
        #expect(error.description.contains("transformer_blocks.0.attn.to_q.weight"))
    }

    @Test func theWrongLayoutFailsWithTheNamesItExpected() throws {
        let fixture = try FluxFixture(variant: "schnell")
        let error = try #require(throws: WeightLoadingError.self) {
            try FluxTransformer(config: fixture.config, weights: fixture.weights, layout: .nunchaku)
        }
        #expect(error.missing.contains("transformer_blocks.0.qkv_proj.weight"))
        #expect(error.missing.contains("single_transformer_blocks.1.out_proj.bias"))
        #expect(error.unexpected.contains("transformer_blocks.0.attn.to_q.weight"))
    }

    @Test func guidanceMustMatchTheModel() throws {
        let dev = try FluxFixture(variant: "dev")
        let model = try FluxTransformer(config: dev.config, weights: dev.weights)
        #expect(throws: NunchakuError.self) {
            try model.forward(
                hiddenStates: dev.file("hidden_states"), encoderHiddenStates: dev.file("encoder_hidden_states"),
                pooledProjections: dev.file("pooled_projections"), timestep: dev.file("timestep"),
                guidance: nil, imgIds: dev.file("img_ids"), txtIds: dev.file("txt_ids"))
        }
        let schnell = try FluxFixture(variant: "schnell")
        let schnellModel = try FluxTransformer(config: schnell.config, weights: schnell.weights)
        #expect(throws: NunchakuError.self) {
            try schnellModel.forward(
                hiddenStates: schnell.file("hidden_states"), encoderHiddenStates: schnell.file("encoder_hidden_states"),
                pooledProjections: schnell.file("pooled_projections"), timestep: schnell.file("timestep"),
                guidance: Tensor([3.5, 3.5], shape: [2]), imgIds: schnell.file("img_ids"), txtIds: schnell.file("txt_ids"))
        }
    }

    @Test func inputsAreCheckedAgainstTheConfig() throws {
        let fixture = try FluxFixture(variant: "schnell")
        let model = try FluxTransformer(config: fixture.config, weights: fixture.weights)
        let hidden = try fixture.file("hidden_states")
        #expect(throws: NunchakuError.shapeMismatch(context: "img_ids", expected: [hidden.shape[1], 3], actual: [2, 3])) {
            try model.forward(
                hiddenStates: hidden, encoderHiddenStates: fixture.file("encoder_hidden_states"),
                pooledProjections: fixture.file("pooled_projections"), timestep: fixture.file("timestep"),
                imgIds: Tensor(zeros: [2, 3], dtype: .f32), txtIds: fixture.file("txt_ids"))
        }
        #expect(throws: NunchakuError.self) {
            try model.forward(
                hiddenStates: hidden, encoderHiddenStates: fixture.file("encoder_hidden_states"),
                pooledProjections: fixture.file("pooled_projections"), timestep: Tensor([0.5], shape: [1]),
                imgIds: fixture.file("img_ids"), txtIds: fixture.file("txt_ids"))
        }
    }

    /// Samples are independent: a batch of one gives the first row of the batch-of-two output.
    @Test func batchOfOneMatchesTheFirstSample() throws {
        let fixture = try FluxFixture(variant: "dev")
        let model = try FluxTransformer(config: fixture.config, weights: fixture.weights)
        func first(_ name: String) throws -> Tensor { try fixture.file(name).slice(rows: 0..<1) }
        let single = try model.forward(
            hiddenStates: first("hidden_states"), encoderHiddenStates: first("encoder_hidden_states"),
            pooledProjections: first("pooled_projections"), timestep: first("timestep"), guidance: first("guidance"),
            imgIds: fixture.file("img_ids"), txtIds: fixture.file("txt_ids"))
        let expected = try fixture.file("sample").slice(rows: 0..<1)
        #expect(Comparison.relativeError(single.floats(), expected.floats()) <= 1e-5)
    }

    @Test(arguments: FluxCheckpointLayout.allCases)
    func everyLinearComesFromTheFactory(layout: FluxCheckpointLayout) throws {
        let fixture = try FluxFixture(variant: "dev")
        let weights = layout == .diffusers
            ? fixture.weights : try FluxNunchakuLayout.convert(diffusers: fixture.weights, config: fixture.config)
        let recorder = RecordingFactory()
        _ = try FluxTransformer(config: fixture.config, weights: weights, layout: layout, linearFactory: recorder)
        let names = recorder.specs.map(\.name)
        // Top level: x/context embedders, 3 embedding MLPs of 2 layers, norm_out, proj_out.
        let perDouble = layout == .diffusers ? 14 : 10, perSingle = layout == .diffusers ? 6 : 5
        #expect(names.count == 10 + 2 * perDouble + 2 * perSingle)
        #expect(Set(names).count == names.count)
        #expect(names.contains(layout == .diffusers ? "transformer_blocks.1.attn.to_v" : "transformer_blocks.1.qkv_proj"))
        #expect(names.contains(layout == .diffusers ? "single_transformer_blocks.0.proj_out" : "single_transformer_blocks.0.mlp_fc2"))
        // How quantized checkpoints of the layout store each layer (research §1.4).
        let specs = Dictionary(uniqueKeysWithValues: recorder.specs.map { ($0.name, $0) })
        let nunchaku = layout == .nunchaku
        #expect(specs["x_embedder"]?.quantization == LinearLayerSpec.Quantization.none)
        #expect(specs["norm_out.linear"]?.quantization == LinearLayerSpec.Quantization.none)
        #expect(specs["transformer_blocks.0.norm1.linear"]?.quantization == (nunchaku ? .awqW4A16 : LinearLayerSpec.Quantization.none))
        #expect(specs["single_transformer_blocks.1.norm.linear"]?.outFeatures == 3 * fixture.config.innerDim)
        if nunchaku {
            #expect(specs["transformer_blocks.1.qkv_proj_context"]?.quantization == .w4a4(inputFollowsGELU: false))
            #expect(specs["transformer_blocks.0.mlp_context_fc2"]?.quantization == .w4a4(inputFollowsGELU: true))
            #expect(specs["single_transformer_blocks.0.mlp_fc2"]?.quantization == .w4a4(inputFollowsGELU: true))
            #expect(specs["single_transformer_blocks.0.out_proj"]?.quantization == .w4a4(inputFollowsGELU: false))
        } else {
            #expect(recorder.specs.allSatisfy { $0.quantization == .none })
        }
    }

    @Test func layoutIsDetectedFromNames() throws {
        let fixture = try FluxFixture(variant: "schnell")
        #expect(FluxCheckpointLayout.detect(in: fixture.weights) == .diffusers)
        let converted = try FluxNunchakuLayout.convert(diffusers: fixture.weights, config: fixture.config)
        #expect(FluxCheckpointLayout.detect(in: converted) == .nunchaku)
        #expect(FluxCheckpointLayout.detect(in: ["x_embedder.weight": Tensor([1], shape: [1])]) == nil)
    }

    @Test func configDecodesDiffusersJSONWithDefaults() throws {
        let real = """
        {"_class_name": "FluxTransformer2DModel", "_diffusers_version": "0.30.0.dev0", "attention_head_dim": 128,
         "guidance_embeds": true, "in_channels": 64, "joint_attention_dim": 4096, "num_attention_heads": 24,
         "num_layers": 19, "num_single_layers": 38, "patch_size": 1, "pooled_projection_dim": 768,
         "axes_dims_rope": [16, 56, 56]}
        """
        let config = try FluxConfig.decode(Data(real.utf8), source: "config.json")
        #expect(config == FluxConfig(guidanceEmbeds: true))
        #expect(config.innerDim == 3072 && config.outputFeatures == 64 && config.mlpHiddenDim == 12288)
        let fill = try FluxConfig.decode(Data(#"{"in_channels": 384, "out_channels": 64}"#.utf8), source: "fill")
        #expect(fill.inChannels == 384 && fill.outputFeatures == 64 && fill.numLayers == 19)
        #expect(throws: NunchakuError.self) {
            try FluxConfig.decode(Data(#"{"axes_dims_rope": [16, 56, 50]}"#.utf8), source: "bad")
        }
        #expect(throws: NunchakuError.self) { try FluxConfig.decode(Data("[1]".utf8), source: "not an object") }
    }
}

/// A factory that builds dense layers and remembers every spec it was asked for.
private final class RecordingFactory: LinearLayerFactory, @unchecked Sendable {
    private(set) var specs: [LinearLayerSpec] = []

    func makeLinear(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        specs.append(spec)
        return try DenseLinearFactory().makeLinear(spec, computeDType: computeDType, weights: weights)
    }
}
