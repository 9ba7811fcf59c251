import Foundation
import Testing
import NunchakuCore
@testable import Models

/// The LoRA plan on each way a model can hold its layers: separate or stacked q/k/v (the CUDA dense path), Nunchaku's
/// fused layers with interleaved adaLN outputs (CPU) or chunk-major ones (CUDA). Every layout must carry the same
/// weight change `ΔW = up·down` as the diffusers modules, rearranged the way the layout arranges the weights.
struct LoRALayerMapTests {
    /// `up·down` of a branch: `[N, K]`.
    static func delta(_ branch: LowRankBranch) -> [Float] {
        var result = [Float](repeating: 0, count: branch.outFeatures * branch.inFeatures)
        for n in 0..<branch.outFeatures {
            for r in 0..<branch.rank where branch.up[n * branch.rank + r] != 0 {
                for k in 0..<branch.inFeatures { result[n * branch.inFeatures + k] += branch.up[n * branch.rank + r] * branch.down[r * branch.inFeatures + k] }
            }
        }
        return result
    }

    static func close(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) }
    }

    @Test func everyLayoutCarriesTheSameWeightChange() throws {
        let fixture = try LoRAFixture.shared()
        let config = fixture.config, width = config.innerDim
        let lora = try LoRAFile(path: LoRAFixture.path("kohya"))
        func plan(_ layout: FluxCheckpointLayout, fuse: Bool, interleaved: Bool) throws -> [String: LowRankBranch] {
            try LoRALayerPlan.branches(of: lora, on: FluxLoRALayerMap(config: config, layout: layout, fuseSeparateQKV: fuse, interleavedModulation: interleaved))
        }
        let separate = try plan(.diffusers, fuse: false, interleaved: true)
        let stacked = try plan(.diffusers, fuse: true, interleaved: false)
        let nunchaku = try plan(.nunchaku, fuse: false, interleaved: true)
        let chunkMajor = try plan(.nunchaku, fuse: false, interleaved: false)
        for branches in [separate, stacked, nunchaku, chunkMajor] {
            #expect(branches.values.allSatisfy { $0.rank % 16 == 0 && $0.rank >= 16 })
        }

        // kohya's fused image q/k/v: one shared down, so one 16-rank tile on the stacked layer.
        let p = "transformer_blocks.0.attn"
        let qkv = try #require(stacked["\(p).to_q+k+v"])
        #expect(qkv.rank == 16)
        let pieces = try ["to_q", "to_k", "to_v"].flatMap { Self.delta(try #require(separate["\(p).\($0)"])) }
        #expect(Self.close(Self.delta(qkv), pieces))
        #expect(Self.close(Self.delta(try #require(nunchaku["transformer_blocks.0.qkv_proj"])), pieces))

        // Single-block linear1 → q/k/v + proj_mlp (mlp_fc1); linear2 → proj_out split by input columns.
        let s = "single_transformer_blocks"
        let linear1 = try ["to_q", "to_k", "to_v"].flatMap { Self.delta(try #require(separate["\(s).1.attn.\($0)"])) }
        #expect(Self.close(Self.delta(try #require(nunchaku["\(s).1.qkv_proj"])), linear1))
        #expect(Self.close(Self.delta(try #require(nunchaku["\(s).1.mlp_fc1"])), Self.delta(try #require(separate["\(s).1.proj_mlp"]))))
        let projOut = Self.delta(try #require(separate["\(s).0.proj_out"]))
        let inFeatures = width + config.mlpHiddenDim
        let attentionColumns = (0..<width).flatMap { n in (0..<width).map { projOut[n * inFeatures + $0] } }
        let mlpColumns = (0..<width).flatMap { n in (width..<inFeatures).map { projOut[n * inFeatures + $0] } }
        #expect(Self.close(Self.delta(try #require(nunchaku["\(s).0.out_proj"])), attentionColumns))
        #expect(Self.close(Self.delta(try #require(nunchaku["\(s).0.mlp_fc2"])), mlpColumns))

        // adaLN: chunk-major (diffusers, CUDA) as is; Nunchaku's CPU layout stores row d·S + s.
        let name = "\(s).1.norm.linear", chunks = 3
        let diffusers = Self.delta(try #require(separate[name]))
        #expect(Self.close(Self.delta(try #require(chunkMajor[name])), diffusers))
        let interleaved = Self.delta(try #require(nunchaku[name]))
        for row in 0..<(chunks * width) {
            let stored = (row % width) * chunks + row / width
            #expect(Array(interleaved[(stored * width)..<((stored + 1) * width)]) == Array(diffusers[(row * width)..<((row + 1) * width)]))
        }
    }
}
