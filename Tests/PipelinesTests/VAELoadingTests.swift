import Foundation
import Testing
import Models
import NunchakuCore
import SafeTensors
@testable import Pipelines

/// Loading the decoder: diffusers folders on disk, strict tensor checks, config validation, input checks.
struct VAELoadingTests {
    @Test func pipelineFolderLoadsAndDecodesLikeInMemoryWeights() throws {
        let fixture = try VAEFixture(variant: "sd")
        let folder = try TemporaryDirectory()
        let vaeFolder = folder.url.appendingPathComponent("vae")
        try FileManager.default.createDirectory(at: vaeFolder, withIntermediateDirectories: true)
        var weights = fixture.weights
        weights["encoder.conv_in.weight"] = Tensor(zeros: [8, 3, 3, 3], dtype: .f32)  // a full AutoencoderKL file
        try write(weights, to: vaeFolder.appendingPathComponent("diffusion_pytorch_model.safetensors").path)
        try Data(JSONEncoder().encode(fixture.config)).write(to: vaeFolder.appendingPathComponent("config.json"))

        let loaded = try AutoencoderKLDecoder(path: folder.url.path)
        #expect(loaded.config == fixture.config)
        let latents = try fixture.tensor("latents")
        let expected = try AutoencoderKLDecoder(config: fixture.config, weights: fixture.weights).decode(diffusionLatents: latents)
        #expect(try loaded.decode(diffusionLatents: latents).floats() == expected.floats())
    }

    @Test func everyTensorProblemIsListedAtOnce() throws {
        let fixture = try VAEFixture(variant: "flux")
        var weights = fixture.weights
        weights["decoder.conv_in.bias"] = nil
        weights["decoder.up_blocks.2.resnets.0.conv_shortcut.weight"] = Tensor(zeros: [16, 32, 3, 3], dtype: .f32)
        weights["decoder.mid_block.resnets.0.norm1.weight"] = Tensor(zeros: [32], dtype: .i32)
        weights["decoder.up_blocks.3.upsamplers.0.conv.weight"] = Tensor(zeros: [8, 8, 3, 3], dtype: .f32)
        weights["post_quant_conv.weight"] = Tensor(zeros: [16, 16, 1, 1], dtype: .f32)
        #expect {
            _ = try AutoencoderKLDecoder(config: fixture.config, weights: weights, source: "broken-vae")
        } throws: { error in
            guard let error = error as? WeightLoadingError else { return false }
            return error.source == "broken-vae" && error.missing == ["decoder.conv_in.bias"]
                && error.unexpected == ["decoder.up_blocks.3.upsamplers.0.conv.weight", "post_quant_conv.weight"]
                && error.mismatched.map(\.name) == ["decoder.up_blocks.2.resnets.0.conv_shortcut.weight"]
                && error.unusable.map(\.name) == ["decoder.mid_block.resnets.0.norm1.weight"]
        }
    }

    @Test func configDefaultsAndValidation() throws {
        let sd = try VAEConfig.decode(Data(#"{"latent_channels": 4, "block_out_channels": [128, 256], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]}"#.utf8), source: "sd")
        #expect(sd.usePostQuantConv && sd.shiftFactor == nil && sd.scalingFactor == 0.18215)
        let bad = [
            #"{"block_out_channels": [64, 80], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]}"#,  // 80 % 32
            #"{"block_out_channels": [64, 64], "up_block_types": ["UpDecoderBlock2D"]}"#,  // one type for two blocks
            #"{"block_out_channels": [64], "up_block_types": ["AttnUpDecoderBlock2D"]}"#,
            #"{"block_out_channels": [64], "act_fn": "gelu"}"#,
            #"{"block_out_channels": [64], "scaling_factor": 0}"#,
            #"{"block_out_channels": "wide"}"#,
        ]
        for json in bad {
            #expect(throws: NunchakuError.self, "\(json)") { try VAEConfig.decode(Data(json.utf8), source: "config.json") }
        }
        #expect(VAEConfig.flux.upsamplingFactor == 8)
    }

    @Test func missingConfigAndBadLatentsAreReported() throws {
        let fixture = try VAEFixture(variant: "sd")
        let folder = try TemporaryDirectory()
        try write(fixture.weights, to: folder.path("diffusion_pytorch_model.safetensors"))
        do {
            _ = try AutoencoderKLDecoder(path: folder.url.path)
            Issue.record("a folder without config.json loaded")
        } catch {
            #expect("\(error)".contains("config.json"))
        }
        let decoder = try AutoencoderKLDecoder(config: fixture.config, weights: fixture.weights)
        for shape in [[1, 16, 2, 2], [4, 2, 2], [1, 4, 0, 3]] {
            #expect(throws: NunchakuError.self, "latents \(shape)") {
                try decoder.decode(Tensor(zeros: shape, dtype: .f32))
            }
        }
        #expect(throws: NunchakuError.self) { try decoder.decode(Tensor(zeros: [1, 4, 2, 2], dtype: .i8)) }
        #expect(throws: NunchakuError.self) { try AutoencoderKLDecoder(config: fixture.config, weights: fixture.weights, computeDType: .f16) }
    }

    private func write(_ tensors: [String: Tensor], to path: String) throws {
        var writer = SafeTensorsWriter()
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) { try writer.add(name, tensor) }
        try writer.write(to: path)
    }
}
