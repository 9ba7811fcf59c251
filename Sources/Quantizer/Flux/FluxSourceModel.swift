import CPUBackend
import Foundation
import Models
import NunchakuCore
import SafeTensors

/// A full-precision (BF16/FP16/FP32) diffusers FLUX transformer to be quantized, checked before any long work:
/// the config names `FluxTransformer2DModel`, the weights are diffusers-layout and unquantized, the width suits
/// W4A4 (a multiple of 128), and every tensor the plan reads exists with the right shape and a float dtype, while
/// no block tensor is left that the plan does not know.
///
/// Weights stay in the memory-mapped checkpoint; `layerWeights(_:)` reads one layer at a time.
public struct FluxSourceModel: Sendable {
    /// The folder or file the weights come from.
    public let source: String
    public let config: FluxConfig
    /// The diffusers `config.json` text, verbatim (written to the output's `config` metadata).
    public let configText: String
    public let weights: SafeTensorsCheckpoint
    public let plan: FluxQuantizationPlan

    /// The class name a diffusers FLUX transformer config carries in `_class_name`.
    public static let diffusersClassName = "FluxTransformer2DModel"

    /// Opens `path` (diffusers transformer or pipeline folder, or a single `.safetensors` file with a `config`
    /// metadata entry or a `config.json` beside it) and checks it.
    /// - Throws: `NunchakuError` naming the file, tensor or config key that is wrong; every tensor problem is listed.
    public init(path: String) throws {
        let files = try FluxModelFiles(path: path)
        source = files.source
        config = files.config
        weights = files.weights
        configText = try Self.configText(path: path, files)
        plan = FluxQuantizationPlan(config: config)
        try Self.checkClassName(configText, source: source)
        try checkWeights()
    }

    /// The names outside the blocks, kept as BF16 under their own names.
    public var unquantizedTensorNames: [String] {
        weights.tensorNames.filter { !FluxQuantizationPlan.isBlockTensor($0) }
    }

    /// One planned layer's weight [N, K] and bias [N] as `Float`s, read from the checkpoint.
    public func layerWeights(_ layer: PlannedLayer) throws -> (weight: [Float], bias: [Float]) {
        switch layer.source {
        case let .stackedRows(names):
            var weight: [Float] = [], bias: [Float] = []
            weight.reserveCapacity(layer.outFeatures * layer.inFeatures)
            for name in names {
                weight += try values("\(name).weight")
                bias += try values("\(name).bias")
            }
            return (weight, bias)
        case let .projOutHalf(name, half):
            let projOut = LinearWeights(
                weight: try values("\(name).weight"), bias: try values("\(name).bias"),
                outFeatures: config.innerDim, inFeatures: config.innerDim + config.mlpHiddenDim)
            let split = try SingleBlockProjOutSplit.split(projOut, hidden: config.innerDim)
            let part = half == .attention ? split.outProj : split.mlpFC2
            return (part.weight, part.bias)
        }
    }

    /// A tensor's elements as `Float`s.
    func values(_ name: String) throws -> [Float] {
        try weights.tensor(name).floatValues(context: name)
    }

    // MARK: Checks

    /// The config text `FluxModelFiles` decoded: a file's `config` metadata entry, or the folder's `config.json`.
    private static func configText(path: String, _ files: FluxModelFiles) throws -> String {
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        if !isDirectory.boolValue, let embedded = try files.weights.files().first?.metadata?["config"] { return embedded }
        let configPath = files.weights.folder + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath), let text = String(data: data, encoding: .utf8) else {
            throw NunchakuError.io(path: configPath, reason: "cannot be read as UTF-8 text")
        }
        return text
    }

    /// `_class_name`, when the config has one, must name the diffusers FLUX transformer.
    private static func checkClassName(_ text: String, source: String) throws {
        let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        if let className = object?["_class_name"] as? String, className != diffusersClassName {
            throw NunchakuError.unsupported(
                context: "\(source) config",
                reason: "_class_name is \"\(className)\"; only FLUX.1 transformers (\"\(diffusersClassName)\") can be quantized")
        }
    }

    private func checkWeights() throws {
        let names = weights.tensorNames
        if let quantized = names.first(where: { $0.hasSuffix(".qweight") || $0.hasSuffix(".wscales") }) {
            throw NunchakuError.invalidArgument(
                context: source, reason: "is already quantized (it has \(quantized)); give the BF16 diffusers model")
        }
        switch FluxCheckpointLayout.detect(in: weights) {
        case .diffusers?: break
        case .nunchaku?:
            throw NunchakuError.unsupported(
                context: source, reason: "holds Nunchaku-layout (fused qkv_proj) weights; give the diffusers FLUX model")
        case nil:
            throw NunchakuError.unsupported(
                context: source,
                reason: "has no FLUX block weights (transformer_blocks.0.attn.to_q or single_transformer_blocks.0.attn.to_q); not a FLUX transformer")
        }
        guard config.innerDim % 128 == 0 else {
            throw NunchakuError.unsupported(
                context: "\(source) config",
                reason: "width num_attention_heads × attention_head_dim = \(config.innerDim) is not a multiple of 128, which W4A4 layers need")
        }
        var problems: [String] = []
        func check(_ name: String, _ shape: [Int]) {
            guard weights.contains(name) else { return problems.append("\(name) is missing") }
            do {
                let info = try weights.info(name)
                if info.shape != shape { problems.append("\(name) has shape \(info.shape), expected \(shape)") }
                if !(try weights.tensor(name).dtype.isFloatingPoint) { problems.append("\(name) is \(info.dtype.name), not a float") }
            } catch {
                problems.append("\(name) cannot be read: \(error)")
            }
        }
        for layer in plan.layers {
            switch layer.source {
            case let .stackedRows(linears):
                let rows = layer.outFeatures / linears.count
                for linear in linears {
                    check("\(linear).weight", [rows, layer.inFeatures])
                    check("\(linear).bias", [rows])
                }
            case let .projOutHalf(name, _):
                check("\(name).weight", [config.innerDim, config.innerDim + config.mlpHiddenDim])
                check("\(name).bias", [config.innerDim])
            }
        }
        for (from, _) in plan.renamedTensors { check(from, [config.attentionHeadDim]) }
        let consumed = plan.consumedBlockTensors
        let unknown = names.filter { FluxQuantizationPlan.isBlockTensor($0) && !consumed.contains($0) }
        if !unknown.isEmpty {
            let shown = unknown.prefix(8).joined(separator: ", ")
            problems.append("\(unknown.count) block tensor(s) this FLUX variant does not have: \(shown)\(unknown.count > 8 ? ", …" : "")")
        }
        guard problems.isEmpty else {
            let unique = Array(Set(problems)).sorted()
            throw NunchakuError.invalidArgument(
                context: source, reason: "does not fit its FLUX config (\(unique.count) problem(s)): \(unique.joined(separator: "; "))")
        }
    }
}
