import NunchakuCore
import SafeTensors

/// The formats `SVDQuantConverter` writes.
public enum SVDQuantTargetFormat: String, Sendable, CaseIterable {
    /// A Nunchaku merged single file (C++ names for FLUX), loadable by Nunchaku itself.
    case nunchaku
    /// This engine's canonical row-major file (`nunchaku_layout: canonical`, natural vector order).
    case canonical
    /// A diffusers folder: `config.json` with a Nunchaku-Lite `quantization_config`, and
    /// `diffusion_pytorch_model.safetensors` with Python parameter names.
    case nunchakuLite = "nunchaku-lite"
    /// Every quantized layer dequantized to a dense weight (lossy): for hardware without 4-bit support and for
    /// inspection.
    case dense
}

/// How a conversion names its output tensors and what metadata it writes.
struct ConversionTarget {
    let format: SVDQuantTargetFormat
    let checkpoint: SVDQuantCheckpoint

    /// The parameter names of W4A4 layers: Python for Nunchaku-Lite, C++ for FLUX, otherwise the source's scheme.
    var parameterNaming: SVDQuantParameterNaming {
        if format == .nunchakuLite { return .python }
        return checkpoint.model.family == .flux ? .cpp : checkpoint.parameterNaming
    }

    /// The output name of a module or tensor given by engine name: FLUX Python names for Nunchaku-Lite, the engine
    /// name otherwise.
    func outputName(_ engineName: String) -> String {
        format == .nunchakuLite && checkpoint.model.family == .flux ? FluxModuleNames.python(fromCpp: engineName) : engineName
    }

    /// The safetensors metadata of the output file.
    func metadata() -> [String: String] {
        let model = checkpoint.model
        var metadata: [String: String] = [:]
        metadata["comfy_config"] = model.comfyConfig
        switch format {
        case .nunchaku, .canonical:
            metadata["config"] = model.config
            metadata["model_class"] = model.nunchakuModelClass
            metadata["quantization_config"] = quantizationConfig
            if format == .canonical {
                metadata["nunchaku_layout"] = "canonical"
                metadata["nunchaku_vector_order"] = ChannelVectorOrder.natural.rawValue
            }
        case .nunchakuLite:
            metadata["format"] = "pt"
            metadata["model_class"] = model.modelClass
            metadata["config"] = model.config
        case .dense:
            metadata["config"] = model.config
            metadata["nunchaku_layout"] = "dense"
            metadata["nunchaku_dequantized_from"] = quantizationConfig
        }
        return metadata
    }

    /// The source's Nunchaku quantization config, or one made from the precision and rank.
    private var quantizationConfig: String? {
        if let text = checkpoint.model.quantizationConfig { return text }
        guard let precision = checkpoint.precision, let rank = checkpoint.rank else { return nil }
        return NunchakuQuantizationConfig.text(precision: precision, rank: rank)
    }

    /// The Nunchaku-Lite `config.json`: the source's diffusers config with `quantization_config` set.
    func liteConfigJSON(computeDType: DType) throws -> String {
        var members: [JSONMember] = []
        if let config = checkpoint.model.config {
            guard let parsed = try? JSONValue.parse(Array(config.utf8)), let object = parsed.objectMembers else {
                throw SVDQuantCheckpointError.invalidConfig(source: checkpoint.source.path, reason: "the model config is not a JSON object")
            }
            members = object.filter { $0.key != "quantization_config" }
        }
        var w4a4: LiteQuantizationConfig.W4A4Section?
        if let precision = checkpoint.precision, let rank = checkpoint.rank {
            w4a4 = LiteQuantizationConfig.W4A4Section(
                precision: precision, groupSize: precision.groupSize, rank: rank, targets: checkpoint.w4a4LayerNames.map(outputName))
        }
        let lite = LiteQuantizationConfig(
            computeDType: computeDType == .f16 ? "float16" : "bfloat16", w4a4: w4a4,
            awqTargets: checkpoint.awqLayerNames.map(outputName))
        members.append(JSONMember("quantization_config", lite.jsonValue))
        return JSONValue.object(members).serialized(pretty: true) + "\n"
    }
}
