import Foundation
import NunchakuCore
@testable import Models

/// The fixtures of scripts/parity/flux_lora_reference.py: the base model (the `dev` model of
/// flux_transformer_reference.py, weights regenerated), its inputs and outputs, and one LoRA file per family.
struct LoRAFixture {
    static let families = ["diffusers", "peft", "kohya", "comfyui", "xlabs", "bfl"]

    let config: FluxConfig
    let weights: [String: Tensor]
    let file: FixtureFile

    init() throws {
        file = try FixtureFile(named: "lora-outputs.safetensors")
        config = try FluxConfig.decode(Data(file.metadata["config"]!.utf8), source: "lora-outputs config")
        weights = try GeneratedWeights.weights(metadata: file.metadata)
    }

    /// The path of `lora-<family>.safetensors`.
    static func path(_ family: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/lora-\(family).safetensors").path
    }

    func run(_ model: FluxTransformer) throws -> Tensor {
        try model.forward(inputs: file.tensors)
    }
}
