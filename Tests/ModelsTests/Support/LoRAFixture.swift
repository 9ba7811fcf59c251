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
    /// The base model's output on the fixture inputs (fp32), computed once.
    let baseOutput: [Float]

    /// The fixture, read and its base output computed once per test run.
    static func shared() throws -> LoRAFixture { try cached.get() }
    private static let cached = Result { try LoRAFixture() }

    private init() throws {
        file = try FixtureFile(named: "lora-outputs.safetensors")
        config = try FluxConfig.decode(Data(file.metadata["config"]!.utf8), source: "lora-outputs config")
        weights = try GeneratedWeights.weights(metadata: file.metadata)
        baseOutput = try FluxTransformer(config: config, weights: weights, source: "lora base").forward(inputs: file.tensors).floats()
    }

    /// A fresh dense model of the fixture's weights (each test applies its own LoRAs).
    func model() throws -> FluxTransformer {
        try FluxTransformer(config: config, weights: weights, source: "lora base")
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
