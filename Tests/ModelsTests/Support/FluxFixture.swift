import Foundation
import NunchakuCore
@testable import Models

/// One fixture of scripts/parity/flux_transformer_reference.py: config, regenerated weights, inputs, outputs.
struct FluxFixture {
    let config: FluxConfig
    let weights: [String: Tensor]
    let file: FixtureFile

    init(variant: String) throws {
        file = try FixtureFile(named: "flux-\(variant).safetensors")
        guard let configText = file.metadata["config"] else {
            throw NunchakuError.invalidArgument(context: "flux-\(variant)", reason: "no config in the metadata")
        }
        config = try FluxConfig.decode(Data(configText.utf8), source: "flux-\(variant) config")
        weights = try GeneratedWeights.weights(metadata: file.metadata)
    }

    /// The model's output for the fixture's inputs.
    func run(_ model: FluxTransformer) throws -> Tensor {
        try model.forward(inputs: file.tensors)
    }
}
