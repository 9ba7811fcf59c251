import Foundation
import NunchakuCore
import SafeTensors
import SVDQuant
@testable import Models

/// One fixture of scripts/parity/flux_svdquant_reference.py: the config, precision and seed of a synthetic SVDQuant
/// checkpoint, the Python packer's digests of its tensors, forward inputs and the dequantized diffusers outputs.
/// The checkpoint itself is regenerated here (`SyntheticSVDQuantFlux`), once per variant and test run.
struct SVDQuantFluxFixture: Sendable {
    let variant: String
    let config: FluxConfig
    let precision: SVDQuantPrecision
    /// The packed tensors (merged-file names).
    let tensors: [String: Tensor]
    /// The fixture file: inputs, `sample` (fp32 reference), `sample_bf16`, metadata.
    let file: FixtureFile
    let configText: String

    static let int4 = Result { try SVDQuantFluxFixture(variant: "int4") }
    static let nvfp4 = Result { try SVDQuantFluxFixture(variant: "nvfp4") }

    /// The fixture of `variant` ("int4" or "nvfp4"), generated on first use.
    static func named(_ variant: String) throws -> SVDQuantFluxFixture {
        try (variant == "int4" ? int4 : nvfp4).get()
    }

    private init(variant: String) throws {
        self.variant = variant
        file = try FixtureFile(named: "flux-svdq-\(variant).safetensors")
        guard let configText = file.metadata["config"], let precisionText = file.metadata["precision"],
              let precision = SVDQuantPrecision(rawValue: precisionText),
              let seedText = file.metadata["seed"], let seed = UInt64(seedText)
        else { throw NunchakuError.invalidArgument(context: "flux-svdq-\(variant)", reason: "config/precision/seed metadata missing") }
        self.configText = configText
        config = try FluxConfig.decode(Data(configText.utf8), source: "flux-svdq-\(variant) config")
        self.precision = precision
        tensors = try SyntheticSVDQuantFlux.checkpoint(config: config, precision: precision, seed: seed)
    }

    /// The Python packer's digest of every tensor, by name.
    func pythonDigests() throws -> [String: String] {
        guard let text = file.metadata["digests"],
              let digests = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]
        else { throw NunchakuError.invalidArgument(context: "flux-svdq-\(variant)", reason: "no digests metadata") }
        return digests
    }

    /// Writes `tensors` as a Nunchaku merged file (config and quantization config in the metadata) at `path`.
    func writeMerged(
        _ tensors: [String: Tensor], to path: String, config: String? = nil, quantizationConfig: String? = nil
    ) throws {
        try Self.write(tensors, to: path, metadata: [
            "config": config ?? configText, "model_class": "NunchakuFluxTransformer2dModel",
            "quantization_config": quantizationConfig ?? SyntheticSVDQuantFlux.quantizationConfig(precision),
        ])
    }

    /// Writes the checkpoint as a Nunchaku legacy folder: block tensors, the rest, `config.json`.
    func writeLegacyFolder(to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let isBlock = { (name: String) in name.hasPrefix("transformer_blocks.") || name.hasPrefix("single_transformer_blocks.") }
        try Self.write(tensors.filter { isBlock($0.key) }, to: folder + "/transformer_blocks.safetensors", metadata: nil)
        try Self.write(tensors.filter { !isBlock($0.key) }, to: folder + "/unquantized_layers.safetensors", metadata: nil)
        try Data(configText.utf8).write(to: URL(fileURLWithPath: folder + "/config.json"))
    }

    /// The model's output on the fixture's inputs.
    func run(_ model: FluxTransformer) throws -> Tensor {
        try model.forward(inputs: file.tensors)
    }

    private static func write(_ tensors: [String: Tensor], to path: String, metadata: [String: String]?) throws {
        var writer = SafeTensorsWriter(metadata: metadata)
        for name in tensors.keys.sorted() { try writer.add(name, tensors[name]!) }
        try writer.write(to: path)
    }
}

/// A fresh folder under the temporary directory, removed by `remove()`.
struct TemporaryFolder {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("nunchaku-models-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
