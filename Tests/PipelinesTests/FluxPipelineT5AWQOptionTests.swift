import Foundation
import Testing
import CUDABackend
import NunchakuCore
import SafeTensors
@testable import Pipelines

/// The load options of the GPU pipeline that the CPU can check: Nunchaku's 4-bit T5 replacing `text_encoder_2/`,
/// its errors, and the W4A4 numerics.
struct FluxPipelineT5AWQOptionTests {
    /// A 4-bit T5 file (TinyChat layers, config in the metadata) of d_model 128 in `folder`.
    static func writeAWQT5(in folder: String, metadata: [String: String]? = nil) throws -> String {
        let config = T5EncoderConfig(vocabSize: 40, dModel: 128, dKv: 64, numHeads: 2, dFf: 256, numLayers: 1)
        let json = #"{"model_type": "t5", "vocab_size": 40, "d_model": 128, "d_kv": 64, "num_heads": 2, "d_ff": 256, "num_layers": 1, "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "layer_norm_epsilon": 1e-06}"#
        var writer = SafeTensorsWriter(metadata: metadata ?? ["config": json])
        let tensors = try TinyChatSyntheticCheckpoint.t5(config: config, seed: 3)
        for name in tensors.keys.sorted() { try writer.add(name, tensors[name]!) }
        let path = "\(folder)/awq-int4-t5.safetensors"
        try writer.write(to: path)
        return path
    }

    /// With the 4-bit T5 given, `text_encoder_2/` may be absent and the file's model is the one used: its d_model
    /// (128) is what the compatibility check then finds against the tiny transformer's 32.
    @Test func theAWQFileReplacesTextEncoder2() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        try FileManager.default.removeItem(atPath: "\(fixture.folder)/text_encoder_2")
        #expect(throws: FluxPipelineError.self) { try FluxPipelineLoader.folder(for: fixture.folder) }
        let path = try Self.writeAWQT5(in: fixture.folder)
        let folder = try FluxPipelineLoader.folder(for: fixture.folder, textEncoder2Replaced: true)
        #expect(!folder.includesTextEncoder2)
        let error = try #require(throws: NunchakuError.self) {
            try FluxPipelineLoader.load(folder: folder, options: FluxPipelineLoadOptions(dtype: .f32, textEncoder2AWQPath: path))
        }
        #expect(error.description.contains("text_encoder_2 d_model = 128 but the transformer needs joint_attention_dim = 32"))
    }

    @Test func aMissingOrForeignAWQFileIsNamedInTheError() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        let missing = "\(fixture.folder)/absent-t5.safetensors"
        let absent = try #require(throws: (any Error).self) {
            try FluxPipelineLoader.load(fixture.folder, options: FluxPipelineLoadOptions(dtype: .f32, textEncoder2AWQPath: missing),
                                        cache: HuggingFaceCache(folders: []))
        }
        #expect(String(describing: absent).contains(missing))
        let noConfig = try Self.writeAWQT5(in: fixture.folder, metadata: ["format": "pt"])
        let foreign = try #require(throws: NunchakuError.self) {
            try FluxPipelineLoader.load(fixture.folder, options: FluxPipelineLoadOptions(dtype: .f32, textEncoder2AWQPath: noConfig),
                                        cache: HuggingFaceCache(folders: []))
        }
        #expect(foreign == .invalidArgument(
            context: noConfig, reason: "no `config` in the safetensors metadata (expected Nunchaku's 4-bit T5 with its T5Config as JSON)"))
    }

    @Test func fastNumericsAreRefusedOnTheCPUBeforeLoading() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        let error = try #require(throws: FluxPipelineError.self) {
            try FluxPipelineLoader.load(fixture.folder, options: FluxPipelineLoadOptions(dtype: .f32, numerics: .fast),
                                        cache: HuggingFaceCache(folders: []))
        }
        #expect(error == .invalidSetting(setting: "numerics", reason: "fast numerics run on the GPU only; use the cuda device or exact numerics"))
    }
}
