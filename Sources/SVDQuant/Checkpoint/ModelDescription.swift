import NunchakuCore
import SafeTensors

/// The model families whose layer conventions the loader knows.
public enum SVDQuantModelFamily: String, Sendable, Equatable {
    /// FLUX.1: C++ block-module names (`FluxModuleNames`), INT4 `mlp_fc2`/`mlp_context_fc2` quantize their
    /// activations unsigned.
    case flux
    /// Any other model: names are used as the file has them, no layer is marked unsigned.
    case generic
}

/// How an SVDQuant checkpoint's files are organised.
public enum SVDQuantContainer: String, Sendable, Equatable {
    /// One Nunchaku `.safetensors` file with `config`/`quantization_config`/`model_class` metadata.
    case nunchakuMerged = "nunchaku merged file"
    /// Nunchaku's legacy folder: `transformer_blocks.safetensors`, `unquantized_layers.safetensors`, `config.json`.
    case nunchakuLegacyFolder = "nunchaku legacy folder"
    /// A diffusers folder whose `config.json` holds a Nunchaku-Lite `quantization_config`.
    case nunchakuLite = "nunchaku-lite folder"
    /// This engine's row-major layout (`"nunchaku_layout": "canonical"` metadata).
    case canonical = "canonical file"
}

/// What a checkpoint says about its model besides the tensors.
public struct SVDQuantModelDescription: Sendable, Equatable {
    public var family: SVDQuantModelFamily
    /// The diffusers transformer config (`config.json` text, or the `config` metadata entry); for a Nunchaku-Lite
    /// source, without its `quantization_config`. Nil when the checkpoint has none.
    public var config: String? = nil
    /// The `model_class` metadata entry (e.g. `NunchakuFluxTransformer2dModel`).
    public var modelClass: String? = nil
    /// ComfyUI's config (`comfy_config` metadata or `comfy_config.json`), kept so conversions can carry it.
    public var comfyConfig: String? = nil
    /// Nunchaku's `quantization_config` metadata text, where the checkpoint has one (merged and canonical files).
    public var quantizationConfig: String? = nil

    /// `config`'s `_class_name` (the diffusers class).
    public var diffusersClass: String? {
        guard let config, let parsed = try? JSONValue.parse(Array(config.utf8)) else { return nil }
        return parsed["_class_name"]?.stringValue
    }

    /// The Nunchaku model class to write into Nunchaku metadata: `modelClass` when known, otherwise derived from the
    /// family or the diffusers class (`QwenImageTransformer2DModel` → `NunchakuQwenImageTransformer2DModel`).
    public var nunchakuModelClass: String? {
        if let modelClass { return modelClass }
        if family == .flux { return "NunchakuFluxTransformer2dModel" }
        guard let diffusersClass else { return nil }
        return diffusersClass.hasPrefix("Nunchaku") ? diffusersClass : "Nunchaku" + diffusersClass
    }

    /// Reads the description of `checkpoint` (stored as `container`); for Nunchaku-Lite folders also returns the
    /// parsed `quantization_config`.
    /// - Throws: `SVDQuantCheckpointError.invalidConfig` for malformed JSON or a malformed Lite config, and
    ///   `SafeTensorsError` when a file cannot be read.
    static func read(
        _ checkpoint: SafeTensorsCheckpoint, container: SVDQuantContainer
    ) throws -> (description: SVDQuantModelDescription, lite: LiteQuantizationConfig?) {
        var description = SVDQuantModelDescription(family: .generic)
        var lite: LiteQuantizationConfig?
        switch container {
        case .nunchakuMerged, .canonical:
            let metadata = try checkpoint.files().compactMap(\.metadata).first ?? [:]
            description.config = metadata["config"]
            description.modelClass = metadata["model_class"]
            description.comfyConfig = metadata["comfy_config"]
            description.quantizationConfig = metadata["quantization_config"]
        case .nunchakuLegacyFolder:
            description.config = try readText(checkpoint.folder + "/config.json")
            description.comfyConfig = try readText(checkpoint.folder + "/comfy_config.json")
        case .nunchakuLite:
            let path = checkpoint.folder + "/config.json"
            guard let text = try readText(path) else {
                throw SVDQuantCheckpointError.invalidConfig(source: path, reason: "missing; a Nunchaku-Lite folder needs config.json")
            }
            let config = try parse(text, source: path)
            guard let members = config.objectMembers, let quantization = config["quantization_config"] else {
                throw SVDQuantCheckpointError.invalidConfig(source: path, reason: "has no quantization_config object")
            }
            lite = try LiteQuantizationConfig(quantization, source: path + " quantization_config")
            // `nunchaku convert` keeps these in the weights file's metadata, so they survive a trip through Lite. The
            // config text there is used when it says what config.json says, to keep its formatting.
            let metadata = try checkpoint.files().compactMap(\.metadata).first ?? [:]
            description.modelClass = metadata["model_class"]
            description.comfyConfig = metadata["comfy_config"]
            let modelConfig = JSONValue.object(members.filter { $0.key != "quantization_config" })
            if let text = metadata["config"], (try? JSONValue.parse(Array(text.utf8))) == modelConfig {
                description.config = text
            } else {
                description.config = modelConfig.serialized(pretty: true)
            }
        }
        if let config = description.config { _ = try parse(config, source: "\(checkpoint.path) config") }
        let classNames = [description.modelClass, description.diffusersClass].compactMap { $0?.lowercased() }
        if classNames.contains(where: { $0.contains("flux") }) || checkpoint.tensorNames.contains(where: FluxModuleNames.isSingleBlockName) {
            description.family = .flux
        }
        return (description, lite)
    }

    private static func readText(_ path: String) throws -> String? {
        guard Environment.fileExists(path) else { return nil }
        return String(decoding: try FileContents.read(path), as: UTF8.self)
    }

    private static func parse(_ text: String, source: String) throws -> JSONValue {
        do {
            return try JSONValue.parse(Array(text.utf8))
        } catch {
            throw SVDQuantCheckpointError.invalidConfig(source: source, reason: "not valid JSON: \(error)")
        }
    }
}
