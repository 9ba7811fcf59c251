import NunchakuCore
import SafeTensors

/// The 4-bit number format of SVDQuant weights and activations (one type with the layers' `SVDQuantPrecision`).
public typealias QuantizationPrecision = SVDQuantPrecision

/// The SVDQuant parameters of a checkpoint, as far as they are known.
public struct SVDQuantParameters: Sendable, Equatable {
    public var precision: QuantizationPrecision?
    public var groupSize: Int?
    /// The rank of the low-rank branch.
    public var rank: Int?
    /// The fields (`precision`, `group size`, `rank`) inferred from tensor dtypes and shapes rather
    /// than read from a quantization config.
    public var inferredFields: [String]

    public init(precision: QuantizationPrecision?, groupSize: Int?, rank: Int?, inferredFields: [String] = []) {
        self.precision = precision
        self.groupSize = groupSize
        self.rank = rank
        self.inferredFields = inferredFields
    }
}

/// How the tensors of a LoRA file are named.
public enum LoRANaming: String, Sendable, Equatable, CaseIterable {
    /// `….lora_A.weight` / `….lora_B.weight` (PEFT, diffusers).
    case peft = "lora_A/lora_B (PEFT, diffusers)"
    /// `….lora_down.weight` / `….lora_up.weight` (+ `.alpha`; kohya sd-scripts, ComfyUI).
    case downUp = "lora_down/lora_up (kohya, ComfyUI)"
    /// `….lora.down.weight` / `….lora.up.weight` (older diffusers attention processors).
    case dottedDownUp = "lora.down/lora.up (diffusers attention processors)"
    /// `….proj_lora1.down.weight` (XLabs FLUX LoRAs).
    case xlabs = "proj_lora down/up (XLabs)"
    /// `….hada_w1_a`, `….lokr_w1` (LyCORIS LoHa / LoKr).
    case lycoris = "hada/lokr (LyCORIS)"
}

/// The checkpoint formats the engine recognises.
public enum CheckpointFormat: Sendable, Equatable {
    /// Unquantized weights, e.g. a BF16 diffusers model. `dtype` is the floating-point dtype holding
    /// the most bytes; `diffusersClass` is `config.json`'s `_class_name` when a config sits beside it.
    case dense(dtype: SafeTensorsDType?, diffusersClass: String?)
    /// A Nunchaku single file: tensors plus `config`, `quantization_config`, `model_class` metadata.
    case nunchakuMerged(SVDQuantParameters, modelClass: String?)
    /// Nunchaku's legacy folder: `transformer_blocks.safetensors` + `unquantized_layers.safetensors`.
    case nunchakuLegacyFolder(SVDQuantParameters)
    /// A diffusers folder whose `config.json` has `quantization_config.quant_method == "nunchaku_lite"`.
    case nunchakuLite(SVDQuantParameters, diffusersClass: String?)
    /// This engine's canonical row-major SVDQuant layout (`"nunchaku_layout": "canonical"` metadata).
    case canonicalSVDQuant(SVDQuantParameters, modelClass: String?)
    /// SVDQuant tensors (`qweight` + `wscales`) without the metadata or files that name a format,
    /// e.g. a legacy `transformer_blocks.safetensors` opened on its own.
    case svdquantTensors(SVDQuantParameters)
    /// A LoRA adapter.
    case lora(LoRANaming)
    /// No tensors, or none this engine knows how to read.
    case unrecognized
}

extension CheckpointFormat {
    /// A short machine-readable name (`nunchaku_merged`, `lora`, …).
    public var kind: String {
        switch self {
        case .dense: "dense"
        case .nunchakuMerged: "nunchaku_merged"
        case .nunchakuLegacyFolder: "nunchaku_legacy_folder"
        case .nunchakuLite: "nunchaku_lite"
        case .canonicalSVDQuant: "canonical_svdquant"
        case .svdquantTensors: "svdquant_tensors"
        case .lora: "lora"
        case .unrecognized: "unrecognized"
        }
    }

    /// A one-line description for people.
    public var title: String {
        switch self {
        case let .dense(dtype, diffusersClass):
            "\(dtype?.name ?? "dense") \(diffusersClass == nil ? "model (no quantized layers)" : "diffusers model")"
        case .nunchakuMerged: "Nunchaku SVDQuant merged file"
        case .nunchakuLegacyFolder: "Nunchaku legacy folder (transformer_blocks + unquantized_layers)"
        case .nunchakuLite: "diffusers Nunchaku-Lite folder"
        case .canonicalSVDQuant: "canonical row-major SVDQuant (swift-nunchaku layout)"
        case .svdquantTensors: "SVDQuant tensors without format metadata"
        case let .lora(naming): "LoRA, \(naming.rawValue) naming"
        case .unrecognized: "unrecognized (no SVDQuant, LoRA or floating-point weights)"
        }
    }

    /// The SVDQuant parameters, for the quantized formats.
    public var svdquantParameters: SVDQuantParameters? {
        switch self {
        case let .nunchakuMerged(parameters, _), let .nunchakuLegacyFolder(parameters), let .nunchakuLite(parameters, _),
             let .canonicalSVDQuant(parameters, _), let .svdquantTensors(parameters):
            parameters
        case .dense, .lora, .unrecognized:
            nil
        }
    }

    /// The model class named by the metadata (`model_class`) or by `config.json` (`_class_name`).
    public var modelClass: String? {
        switch self {
        case let .nunchakuMerged(_, modelClass), let .canonicalSVDQuant(_, modelClass): modelClass
        case let .nunchakuLite(_, diffusersClass), let .dense(_, diffusersClass): diffusersClass
        case .nunchakuLegacyFolder, .svdquantTensors, .lora, .unrecognized: nil
        }
    }

    /// Labelled lines for `nunchaku inspect`.
    public var reportFields: [ReportField] {
        var fields = [ReportField("format", title)]
        if let parameters = svdquantParameters {
            var parts = [parameters.precision?.rawValue ?? "precision unknown"]
            parts.append(parameters.groupSize.map { "group size \($0)" } ?? "group size unknown")
            parts.append(parameters.rank.map { "rank \($0)" } ?? "rank unknown")
            let inferred = parameters.inferredFields.isEmpty
                ? "" : " (\(parameters.inferredFields.joined(separator: ", ")) inferred from tensors)"
            fields.append(ReportField("quantization", parts.joined(separator: ", ") + inferred))
        }
        if let modelClass { fields.append(ReportField("model class", modelClass)) }
        return fields
    }

    /// The format as JSON: `kind`, `title`, and where known `precision`, `group_size`, `rank`,
    /// `inferred` (the fields read from tensors), `model_class`, `lora_naming`.
    public var jsonValue: JSONValue {
        var members = [JSONMember("kind", .string(kind)), JSONMember("title", .string(title))]
        if let parameters = svdquantParameters {
            members.append(JSONMember("precision", parameters.precision.map { .string($0.rawValue) } ?? .null))
            members.append(JSONMember("group_size", parameters.groupSize.map { .integer($0) } ?? .null))
            members.append(JSONMember("rank", parameters.rank.map { .integer($0) } ?? .null))
            members.append(JSONMember("inferred", .array(parameters.inferredFields.map { .string($0) })))
        }
        if let modelClass { members.append(JSONMember("model_class", .string(modelClass))) }
        if case let .lora(naming) = self { members.append(JSONMember("lora_naming", .string(naming.rawValue))) }
        if case let .dense(dtype, _) = self { members.append(JSONMember("dtype", dtype.map { .string($0.name) } ?? .null)) }
        return .object(members)
    }
}

/// Why a checkpoint's format description could not be read.
public enum CheckpointFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A JSON document (`config.json`, or a metadata entry holding JSON) is malformed.
    case invalidJSON(source: String, reason: String)
    /// A quantization config has a field of the wrong type or an unknown value.
    case invalidQuantizationConfig(source: String, reason: String)
    /// The `nunchaku_layout` metadata names a layout this engine does not know.
    case unknownLayout(file: String, layout: String)

    public var description: String {
        switch self {
        case let .invalidJSON(source, reason): "\(source): not valid JSON: \(reason)"
        case let .invalidQuantizationConfig(source, reason): "\(source): invalid quantization config: \(reason)"
        case let .unknownLayout(file, layout): "\(file): unknown nunchaku_layout \"\(layout)\""
        }
    }
}

/// Works out which format `checkpoint` is in, from its metadata, its file names, a `config.json`
/// beside it (for folders and shard indexes) and, failing those, its tensor names, dtypes and shapes.
/// Precision, group size and rank come from the quantization config where there is one; missing
/// fields are inferred (fp8 tensors → nvfp4; group size = K / `wscales` rows; rank = dim 1 of the
/// first `*.lora_down` / `*.proj_down`).
/// - Throws: `SafeTensorsError` when a file cannot be read, `CheckpointFormatError` when a config is malformed.
public func detectCheckpointFormat(_ checkpoint: SafeTensorsCheckpoint) throws -> CheckpointFormat {
    let files = try checkpoint.files()
    let infos = files.flatMap(\.tensorInfos).sorted { CheckpointInventory.naturallyPrecedes($0.name, $1.name) }
    let inferred = FormatInference(infos: infos)
    for file in files {
        guard let metadata = file.metadata else { continue }
        if let layout = metadata["nunchaku_layout"] {
            if layout == "dense" {
                // `nunchaku convert --to dense`: dequantized weights, described by the diffusers config it carries.
                let config = try metadata["config"].map { try parseJSON(Array($0.utf8), source: "\(file.path) metadata config") }
                return .dense(dtype: inferred.dominantFloatDType, diffusersClass: config?["_class_name"]?.stringValue)
            }
            guard layout == "canonical" else { throw CheckpointFormatError.unknownLayout(file: file.path, layout: layout) }
            let parameters = try nunchakuParameters(metadata["quantization_config"], source: file.path, inferred: inferred)
            return .canonicalSVDQuant(parameters, modelClass: metadata["model_class"])
        }
        if metadata["quantization_config"] != nil, inferred.hasQuantizedWeights {
            let parameters = try nunchakuParameters(metadata["quantization_config"], source: file.path, inferred: inferred)
            return .nunchakuMerged(parameters, modelClass: metadata["model_class"])
        }
    }
    let fileNames = Set(files.map { $0.path.split(separator: "/").last.map(String.init) ?? $0.path })
    if checkpoint.layout == .folder, fileNames.isSuperset(of: ["transformer_blocks.safetensors", "unquantized_layers.safetensors"]) {
        return .nunchakuLegacyFolder(inferred.parameters(declared: nil))
    }
    let config = checkpoint.layout == .singleFile ? nil : try readConfig(inFolder: checkpoint.folder)
    let diffusersClass = config?["_class_name"]?.stringValue
    if let quantization = config?["quantization_config"], quantization["quant_method"]?.stringValue == "nunchaku_lite" {
        let source = checkpoint.folder + "/config.json"
        return .nunchakuLite(try liteParameters(quantization, source: source, inferred: inferred), diffusersClass: diffusersClass)
    }
    if inferred.hasQuantizedWeights { return .svdquantTensors(inferred.parameters(declared: nil)) }
    if let naming = loraNaming(infos) { return .lora(naming) }
    guard let dtype = inferred.dominantFloatDType else { return .unrecognized }
    return .dense(dtype: dtype, diffusersClass: diffusersClass)
}

// MARK: Quantization configs

/// Parameters from Nunchaku's `quantization_config` metadata
/// (`{"method":"svdquant","weight":{"dtype":"int4"|"fp4_e2m1_all","group_size":…},"rank":…}`).
private func nunchakuParameters(_ text: String?, source: String, inferred: FormatInference) throws -> SVDQuantParameters {
    guard let text else { return inferred.parameters(declared: nil) }
    let config = try parseJSON(Array(text.utf8), source: "\(source) metadata quantization_config")
    func invalid(_ reason: String) -> CheckpointFormatError {
        .invalidQuantizationConfig(source: "\(source) metadata", reason: reason)
    }
    guard config.objectMembers != nil else { throw invalid("expected an object, found \(config.kindDescription)") }
    var declared = SVDQuantParameters(precision: nil, groupSize: nil, rank: nil)
    if let weightDType = config["weight"]?["dtype"] {
        switch weightDType.stringValue {
        case "int4": declared.precision = .int4
        case "fp4_e2m1_all": declared.precision = .nvfp4
        default: throw invalid("unknown weight dtype \(weightDType.serialized())")
        }
    }
    declared.groupSize = try optionalInt(config["weight"]?["group_size"], "weight.group_size", invalid)
    declared.rank = try optionalInt(config["rank"], "rank", invalid)
    return inferred.parameters(declared: declared)
}

/// Parameters from a Nunchaku-Lite `quantization_config` (`svdq_w4a4.{precision, group_size, rank}`).
private func liteParameters(_ config: JSONValue, source: String, inferred: FormatInference) throws -> SVDQuantParameters {
    func invalid(_ reason: String) -> CheckpointFormatError { .invalidQuantizationConfig(source: source, reason: reason) }
    guard let section = config["svdq_w4a4"], section != .null else { return inferred.parameters(declared: nil) }
    guard section.objectMembers != nil else { throw invalid("svdq_w4a4 must be an object") }
    var declared = SVDQuantParameters(precision: nil, groupSize: nil, rank: nil)
    if let precision = section["precision"] {
        // Nunchaku-Lite writes NVFP4 as "fp4" (its runtime calls it "nvfp4").
        switch precision.stringValue {
        case "int4": declared.precision = .int4
        case "fp4", "nvfp4": declared.precision = .nvfp4
        default: throw invalid("unknown svdq_w4a4.precision \(precision.serialized())")
        }
    }
    declared.groupSize = try optionalInt(section["group_size"], "svdq_w4a4.group_size", invalid)
    declared.rank = try optionalInt(section["rank"], "svdq_w4a4.rank", invalid)
    return inferred.parameters(declared: declared)
}

private func optionalInt(_ value: JSONValue?, _ field: String, _ invalid: (String) -> CheckpointFormatError) throws -> Int? {
    guard let value, value != .null else { return nil }
    guard let number = value.intValue, number >= 0 else { throw invalid("\(field) must be a non-negative integer") }
    return number
}

private func readConfig(inFolder folder: String) throws -> JSONValue? {
    let path = folder + "/config.json"
    guard Environment.fileExists(path) else { return nil }
    return try parseJSON(FileContents.read(path), source: path)
}

private func parseJSON(_ text: [UInt8], source: String) throws -> JSONValue {
    do {
        return try JSONValue.parse(text)
    } catch {
        throw CheckpointFormatError.invalidJSON(source: source, reason: "\(error)")
    }
}

// MARK: Inference from tensors

/// What the tensors themselves say about a checkpoint.
private struct FormatInference {
    let hasQuantizedWeights: Bool
    let precision: QuantizationPrecision?
    let groupSize: Int?
    let rank: Int?
    let dominantFloatDType: SafeTensorsDType?

    init(infos: [TensorInfo]) {
        let byName = Dictionary(infos.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let w4a4Layers = infos.compactMap { info -> (qweight: TensorInfo, wscales: TensorInfo)? in
            guard info.name.hasSuffix(".qweight") else { return nil }
            let prefix = String(info.name.dropLast(".qweight".count))
            guard let wscales = byName[prefix + ".wscales"], byName[prefix + ".wzeros"] == nil else { return nil }
            return (info, wscales)
        }
        hasQuantizedWeights = !w4a4Layers.isEmpty
        precision = !hasQuantizedWeights ? nil : infos.contains { $0.dtype == .f8e4m3 } ? .nvfp4 : .int4
        groupSize = w4a4Layers.lazy.compactMap { layer -> Int? in
            guard layer.qweight.shape.count == 2, layer.wscales.shape.count == 2, layer.wscales.shape[0] > 0 else { return nil }
            let inputs = 2 * layer.qweight.shape[1]
            return inputs % layer.wscales.shape[0] == 0 ? inputs / layer.wscales.shape[0] : nil
        }.first
        rank = infos.first { ($0.name.hasSuffix(".lora_down") || $0.name.hasSuffix(".proj_down")) && $0.shape.count == 2 }?.shape[1]
        var floatBytes: [SafeTensorsDType: Int] = [:]
        for info in infos where [.f64, .f32, .f16, .bf16].contains(info.dtype) {
            floatBytes[info.dtype, default: 0] += info.byteCount
        }
        dominantFloatDType = floatBytes.max { ($0.value, $0.key.rawValue) < ($1.value, $1.key.rawValue) }?.key
    }

    /// `declared` with every missing field filled in from the tensors (and noted as inferred).
    func parameters(declared: SVDQuantParameters?) -> SVDQuantParameters {
        var result = declared ?? SVDQuantParameters(precision: nil, groupSize: nil, rank: nil)
        if result.precision == nil, let precision {
            result.precision = precision
            result.inferredFields.append("precision")
        }
        if result.groupSize == nil, let groupSize {
            result.groupSize = groupSize
            result.inferredFields.append("group size")
        }
        if result.rank == nil, let rank {
            result.rank = rank
            result.inferredFields.append("rank")
        }
        return result
    }
}

/// The LoRA naming family most of the tensor names follow, or nil when none looks like a LoRA.
private func loraNaming(_ infos: [TensorInfo]) -> LoRANaming? {
    func family(of name: String) -> LoRANaming? {
        if name.contains(".lora_A.") || name.contains(".lora_B.") || name.hasSuffix(".lora_A") { return .peft }
        if name.contains("lora_down.") || name.contains("lora_up.") { return .downUp }
        if name.contains(".lora.down.") || name.contains(".lora.up.") { return .dottedDownUp }
        if name.contains("proj_lora"), name.contains(".down.") || name.contains(".up.") { return .xlabs }
        if name.contains(".hada_w") || name.contains(".lokr_w") { return .lycoris }
        return nil
    }
    var counts: [LoRANaming: Int] = [:]
    for info in infos {
        if let naming = family(of: info.name) { counts[naming, default: 0] += 1 }
    }
    return LoRANaming.allCases.filter { counts[$0] != nil }.max { counts[$0]! < counts[$1]! }
}
