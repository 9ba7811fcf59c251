import Testing
import NunchakuCore
@testable import Models

/// `LoRAStack.revision` counts every change to the model's layers (what a captured CUDA graph checks before a
/// replay), and only those: a rejected LoRA changes nothing.
struct LoRARevisionTests {
    @Test func everyChangeAndOnlyChangesCount() throws {
        let fixture = try LoRAFixture.shared()
        let model = try fixture.model()
        #expect(model.loras.revision == 0)
        let id = try model.loras.add(LoRAFile(path: LoRAFixture.path("diffusers")), strength: 1)
        #expect(model.loras.revision == 1)
        try model.loras.setStrength(0.5, for: id)
        #expect(model.loras.revision == 2)
        let rejected = try LoRAFile(tensors: LoRAErrorTests.pair("transformer.transformer_blocks.7.attn.to_q", rank: 4, 8, 8),
                                    metadata: nil, source: "bad.safetensors")
        #expect(throws: LoRAError.self) { try model.loras.add(rejected) }
        #expect(throws: NunchakuError.self) { try model.loras.setStrength(1, for: id + 1) }
        #expect(model.loras.revision == 2, "a rejected change must not count")
        try model.loras.remove(id)
        #expect(model.loras.revision == 3)
        try model.loras.reset()
        #expect(model.loras.revision == 4)
    }
}

/// What a captured FLUX graph is fixed to, as its errors print it.
struct FluxCUDAInputShapeTests {
    @Test func shapesCompareAndDescribeThemselves() {
        let dev = FluxCUDAInputShape(batch: 1, imageTokens: 4096, textTokens: 512, hasGuidance: true)
        #expect(dev.description == "batch 1, 4096 image + 512 text tokens, guidance")
        #expect(FluxCUDAInputShape(batch: 2, imageTokens: 1024, textTokens: 256, hasGuidance: false).description
            == "batch 2, 1024 image + 256 text tokens")
        #expect(dev != FluxCUDAInputShape(batch: 1, imageTokens: 4096, textTokens: 512, hasGuidance: false))
        #expect(dev == FluxCUDAInputShape(batch: 1, imageTokens: 4096, textTokens: 512, hasGuidance: true))
    }
}
