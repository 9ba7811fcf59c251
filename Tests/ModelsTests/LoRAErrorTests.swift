import Foundation
import Testing
import NunchakuCore
@testable import Models

/// Bad LoRAs fail with one `LoRAError` naming the file and every key at fault, and leave the model as it was.
struct LoRAErrorTests {
    static func pair(_ key: String, rank: Int, _ inFeatures: Int, _ outFeatures: Int, upRank: Int? = nil, value: Float = 0.01) -> [String: Tensor] {
        ["\(key).lora_A.weight": Tensor([Float](repeating: value, count: rank * inFeatures), shape: [rank, inFeatures]),
         "\(key).lora_B.weight": Tensor([Float](repeating: 0.01, count: outFeatures * (upRank ?? rank)), shape: [outFeatures, upRank ?? rank])]
    }

    static func read(_ tensors: [String: Tensor]) -> Result<LoRAFile, any Error> {
        Result { try LoRAFile(tensors: tensors, metadata: nil, source: "bad.safetensors") }
    }

    static func problems(_ result: Result<LoRAFile, any Error>) -> [String] {
        guard case let .failure(error as LoRAError) = result else { return [] }
        #expect(error.file == "bad.safetensors")
        return error.problems
    }

    @Test func rankMismatchNaNAndMissingHalvesAreListed() {
        var tensors = Self.pair("transformer.x_embedder", rank: 4, 64, 128, upRank: 3)
        tensors.merge(Self.pair("transformer.proj_out", rank: 2, 128, 64, value: .nan)) { $1 }
        tensors["transformer.context_embedder.lora_A.weight"] = Tensor([Float](repeating: 0, count: 8), shape: [2, 4])
        tensors["transformer.norm_out.linear.dora_scale"] = Tensor([1], shape: [1])
        let problems = Self.problems(Self.read(tensors))
        #expect(problems.count == 4, "\(problems)")
        #expect(problems.contains { $0.contains("transformer.x_embedder") && $0.contains("rank mismatch") })
        #expect(problems.contains { $0.contains("transformer.proj_out") && $0.contains("non-finite") })
        #expect(problems.contains { $0.contains("transformer.context_embedder") && $0.contains("no up") })
        #expect(problems.contains { $0.contains("dora_scale") })
    }

    @Test func keysForOtherModelsAndSizesFailWithoutChangingTheModel() throws {
        let fixture = try LoRAFixture.shared()
        let model = try fixture.model()
        let base = fixture.baseOutput
        let width = fixture.config.innerDim
        var tensors = Self.pair("lora_unet_down_blocks_0_attentions_0_proj_in", rank: 4, 320, 320).mapKeys { $0.replacingOccurrences(of: "lora_A", with: "lora_down").replacingOccurrences(of: "lora_B", with: "lora_up") }
        tensors.merge(Self.pair("transformer.transformer_blocks.7.attn.to_q", rank: 4, width, width)) { $1 }
        tensors.merge(Self.pair("double_blocks.0.img_attn.qkv", rank: 4, 3072, 3 * 3072)) { $1 }
        tensors.merge(Self.pair("transformer.transformer_blocks.0.attn.to_k", rank: 4, width, width)) { $1 }
        let lora = try LoRAFile(tensors: tensors, metadata: nil, source: "bad.safetensors")
        #expect(lora.pairs.count == 4)
        do {
            try model.loras.add(lora)
            Issue.record("a LoRA with foreign keys was applied")
        } catch let error as LoRAError {
            print(error)
            #expect(error.file == "bad.safetensors")
            #expect(error.problems.count == 3, "\(error.problems)")
            #expect(error.problems.contains { $0.contains("lora_unet_down_blocks_0_attentions_0_proj_in") && $0.contains("matches no FLUX") })
            #expect(error.problems.contains { $0.contains("transformer_blocks.7.attn.to_q") && $0.contains("matches no layer of this model") })
            #expect(error.problems.contains { $0.contains("double_blocks.0.img_attn.qkv") && $0.contains("another model size") })
        }
        #expect(model.loras.applied.isEmpty)
        #expect(try fixture.run(model).floats() == base, "a rejected LoRA must leave the model unchanged")
    }

    @Test func textEncoderKeysAreSetAside() throws {
        var tensors = Self.pair("transformer.x_embedder", rank: 4, 64, 128)
        tensors["lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = Tensor([0], shape: [1, 1])
        let lora = try Self.read(tensors).get()
        #expect(lora.ignoredKeys == ["lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"])
        #expect(lora.pairs.map(\.key) == ["transformer.x_embedder"])
        #expect(lora.format == .diffusers)
        #expect(Self.problems(Self.read(["lora_te_x.lora_down.weight": Tensor([0], shape: [1, 1])])).first?.contains("no LoRA pairs") == true)
    }
}

extension Dictionary {
    fileprivate func mapKeys(_ transform: (Key) -> Key) -> [Key: Value] {
        Dictionary(uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}
