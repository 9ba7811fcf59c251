import Foundation
import Testing
import NunchakuCore
import SVDQuant
@testable import Models

/// `NunchakuLoRAExport` (`nunchaku lora convert`) on the synthetic INT4 checkpoint: W4A4 layers hold the SVD ranks
/// followed by the LoRA's in Nunchaku's packed layout, AWQ layers plain down and interleaved up, unquantized layers
/// diffusers lora_A/lora_B.
struct LoRAConvertTests {
    @Test func convertedFileHoldsTheMergedBranches() throws {
        let fixture = try SVDQuantFluxFixture.named("int4")
        let lora = try LoRAFile.random(config: fixture.config, rank: 8, seed: 3)
        let (tensors, checkpoint) = try SVDQuantTestCheckpoint.withFile("int4") { path in
            (try NunchakuLoRAExport.convert(lora, strength: 0.5, base: FluxModelFiles(path: path)), try SVDQuantCheckpoint(path: path))
        }
        let map = FluxLoRALayerMap(config: fixture.config, layout: .nunchaku, fuseSeparateQKV: false, interleavedModulation: true)
        let branches = try LoRALayerPlan.branches(of: lora, on: map)
        #expect(Set(tensors.keys.map { $0.components(separatedBy: ".lora_").first! }) == Set(branches.keys))

        for name in ["transformer_blocks.0.qkv_proj", "single_transformer_blocks.0.mlp_fc2"] {
            let base = try checkpoint.w4a4Weights(name)
            var packed = try base.tensors(layout: .nunchaku)
            packed.projDown = try #require(tensors["\(name).lora_down"])
            packed.projUp = try #require(tensors["\(name).lora_up"])
            let unpacked = try SVDQW4A4Weights(name: name, tensors: packed, layout: .nunchaku)
            let expected = try base.appendingLowRank(try #require(branches[name]).scaled(by: 0.5))
            #expect(unpacked.rank == base.rank + 16)
            #expect(unpacked.canonical.projDown.floats() == expected.canonical.projDown.floats(), "\(name) lora_down")
            #expect(unpacked.canonical.projUp.floats() == expected.canonical.projUp.floats(), "\(name) lora_up")
        }
        let modulation = try #require(branches["transformer_blocks.0.norm1.linear"])
        #expect(tensors["transformer_blocks.0.norm1.linear.lora_down"]?.shape == [16, fixture.config.innerDim])
        #expect(tensors["transformer_blocks.0.norm1.linear.lora_up"]?.floats()
                == Tensor.rounding(modulation.scaled(by: 0.5).up, shape: [modulation.up.count], to: .bf16).floats())
        #expect(tensors["x_embedder.lora_A.weight"]?.shape == [16, fixture.config.inChannels])
        #expect(tensors["x_embedder.lora_B.weight"]?.dtype == .bf16)
    }
}
