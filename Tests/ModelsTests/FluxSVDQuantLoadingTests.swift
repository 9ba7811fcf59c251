import Foundation
import Testing
import NunchakuCore
import SVDQuant
import SafeTensors
@testable import Models

/// Bad SVDQuant checkpoints: every problem is an error that names what is wrong and, where there is one, what would
/// work instead.
struct FluxSVDQuantLoadingTests {
    /// Writes `tensors` (default: the fixture's) as a merged file and loads it.
    private func load(
        _ fixture: SVDQuantFluxFixture, _ tensors: [String: Tensor]? = nil, config: String? = nil,
        quantizationConfig: String? = nil, computeDType: DType = .bf16
    ) throws -> FluxTransformer {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path + "/checkpoint.safetensors"
        try fixture.writeMerged(tensors ?? fixture.tensors, to: path, config: config, quantizationConfig: quantizationConfig)
        return try FluxTransformer(files: FluxModelFiles(path: path), computeDType: computeDType)
    }

    /// The fixture's config JSON with some keys replaced.
    private func config(_ fixture: SVDQuantFluxFixture, _ changes: [String: Int]) throws -> String {
        var object = try #require(try JSONSerialization.jsonObject(with: Data(fixture.configText.utf8)) as? [String: Any])
        for (key, value) in changes { object[key] = value }
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// The quantization config against the tensors: SVDQuantCheckpoint names every layer that disagrees.
    @Test func aQuantizationConfigThatContradictsTheTensorsIsRejected() throws {
        let fixture = try SVDQuantFluxFixture.named("int4")
        let precision = try #require(throws: SVDQuantCheckpointError.self) {
            try load(fixture, quantizationConfig: SyntheticSVDQuantFlux.quantizationConfig(.nvfp4))
        }
        #expect(precision.description.contains("transformer_blocks.0.qkv_proj.wscales: dtype BF16 holds int4 scales"), "\(precision)")
        let rank = try #require(throws: SVDQuantCheckpointError.self) {
            try load(fixture, quantizationConfig: SyntheticSVDQuantFlux.quantizationConfig(.int4, rank: 64))
        }
        #expect(rank.description.contains("transformer_blocks.0.qkv_proj.lora_down: rank 32"), "\(rank)")
    }

    @Test func aConfigThatDoesNotDescribeTheBlocksIsRejected() throws {
        let fixture = try SVDQuantFluxFixture.named("int4")
        let error = try #require(throws: NunchakuError.self) {
            try load(fixture, config: config(fixture, ["num_layers": 3]))
        }
        #expect(error.description.contains("num_layers = 3"), "\(error)")
        #expect(error.description.contains("missing: transformer_blocks.1, transformer_blocks.2"), "\(error)")
        let channels = try #require(throws: WeightLoadingError.self) {
            try load(fixture, config: config(fixture, ["in_channels": 128, "out_channels": 64]))
        }
        #expect(channels.mismatched == [.init(name: "x_embedder.weight", expected: [256, 128], actual: [256, 64])])
    }

    @Test func aMissingBlockIsNamed() throws {
        let fixture = try SVDQuantFluxFixture.named("nvfp4")
        let error = try #require(throws: NunchakuError.self) {
            try load(fixture, fixture.tensors.filter { !$0.key.hasPrefix("single_transformer_blocks.0.") })
        }
        #expect(error.description.contains("num_single_layers = 1"), "\(error)")
        #expect(error.description.contains("missing: single_transformer_blocks.0"), "\(error)")
    }

    /// Tensors inside quantized layers are checked when the checkpoint opens, all at once.
    @Test func quantizedTensorProblemsAreListedTogether() throws {
        let fixture = try SVDQuantFluxFixture.named("int4")
        var tensors = fixture.tensors
        tensors["transformer_blocks.0.qkv_proj.lora_up"] = nil
        tensors["transformer_blocks.0.qkv_proj.extra"] = Tensor([1], shape: [1])
        let scales = try #require(tensors["single_transformer_blocks.0.mlp_fc1.wscales"])
        tensors["single_transformer_blocks.0.mlp_fc1.wscales"] = try scales.reshaped([scales.shape[1], scales.shape[0]])
        tensors["transformer_blocks.0.norm1.linear.wzeros"] = tensors["transformer_blocks.0.norm1.linear.wzeros"]?.converted(to: .f32)
        let error = try #require(throws: SVDQuantCheckpointError.self) { try load(fixture, tensors) }
        guard case let .invalidTensors(_, problems) = error else {
            Issue.record("expected invalidTensors, got \(error)")
            return
        }
        #expect(problems.map(\.tensor) == [
            "single_transformer_blocks.0.mlp_fc1.wscales", "transformer_blocks.0.norm1.linear.wzeros",
            "transformer_blocks.0.qkv_proj.extra", "transformer_blocks.0.qkv_proj.lora_up",
        ])
    }

    /// Layers the model needs, tensors it does not use, and layer values that fail validation, in one model error.
    @Test func layerProblemsAreListedTogether() throws {
        let fixture = try SVDQuantFluxFixture.named("int4")
        var tensors = fixture.tensors.filter { !$0.key.hasPrefix("transformer_blocks.0.out_proj_context.") }
        tensors["transformer_blocks.0.extra.weight"] = Tensor([1], shape: [1])
        tensors["single_transformer_blocks.0.out_proj.smooth"] = Tensor(zeros: [256], dtype: .bf16)
        let error = try #require(throws: WeightLoadingError.self) { try load(fixture, tensors) }
        #expect(error.missing == ["transformer_blocks.0.out_proj_context"])
        #expect(error.unexpected == ["transformer_blocks.0.extra.weight"])
        #expect(error.unusable.map(\.name) == ["single_transformer_blocks.0.out_proj"])
        #expect(error.unusable.first?.reason.contains("smooth: element 0 is 0.0") == true, "\(error)")
    }

    /// A layer of the wrong kind (an AWQ layer where the model needs W4A4) is named with both kinds.
    @Test func aLayerOfTheWrongKindIsNamed() throws {
        let fixture = try SVDQuantFluxFixture.named("int4")
        var tensors = fixture.tensors.filter { !$0.key.hasPrefix("transformer_blocks.0.out_proj.") }
        let adaLN = "transformer_blocks.0.norm1.linear"
        for role in ["qweight", "wscales", "wzeros", "bias"] { tensors["transformer_blocks.0.out_proj.\(role)"] = tensors["\(adaLN).\(role)"] }
        let error = try #require(throws: WeightLoadingError.self) { try load(fixture, tensors) }
        #expect(error.unusable.map(\.name) == ["transformer_blocks.0.out_proj"])
        #expect(error.unusable.first?.reason.contains("is an AWQ W4A16 layer in the checkpoint; the model needs an SVDQuant W4A4 layer") == true, "\(error)")
    }

    /// Kernel-exact SVDQuant layers quantize 16-bit activations: an f32 run is refused with the two ways that work.
    @Test func anF32RunOfKernelExactLayersIsRefusedWithTheAlternatives() throws {
        let fixture = try SVDQuantFluxFixture.named("nvfp4")
        let error = try #require(throws: NunchakuError.self) { try load(fixture, computeDType: .f32) }
        #expect(error.description.contains("SVDQuant nvfp4 checkpoint runs in bf16"), "\(error)")
        #expect(error.description.contains("--dtype bf16") && error.description.contains("--dequantize"), "\(error)")
    }
}
