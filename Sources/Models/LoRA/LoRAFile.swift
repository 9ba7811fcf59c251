import NunchakuCore
import SafeTensors

/// The naming families of FLUX LoRA files (research/diffusion-architectures.md §6).
public enum LoRAFormat: String, Sendable, CaseIterable, CustomStringConvertible {
    /// PEFT `lora_A`/`lora_B` on diffusers module names, with or without the `transformer.` prefix
    /// (`save_lora_weights` / `save_lora_adapter`); alphas from `.alpha` keys or the `lora_adapter_metadata`.
    case diffusers
    /// `lora_A`/`lora_B` on BFL's original module names (`double_blocks.0.img_attn.qkv`, `single_blocks.0.linear1`).
    case bflOriginal = "bfl-original"
    /// kohya sd-scripts: `lora_unet_double_blocks_0_img_attn_qkv.lora_down/lora_up` + `.alpha`.
    case kohya
    /// ComfyUI: `diffusion_model.double_blocks.0.img_attn.qkv.lora_down/lora_up` + `.alpha`.
    case comfyUI = "comfyui"
    /// XLabs: `double_blocks.0.processor.qkv_lora1.down/up` (no alpha: scale 1).
    case xlabs

    public var description: String { rawValue }
}

/// One low-rank pair of a LoRA file, `ΔW = scale · up · down`, values widened to `Float`.
public struct LoRAPair: Sendable {
    /// The module key as the file writes it, without the `lora_A`/`lora_down`/`alpha` suffix.
    public let key: String
    /// The naming family of `key`.
    public let format: LoRAFormat
    /// `[rank, inFeatures]` row-major.
    public let down: [Float]
    /// `[outFeatures, rank]` row-major.
    public let up: [Float]
    public let rank: Int
    public let inFeatures: Int
    public let outFeatures: Int
    /// `alpha / rank` (PEFT's `lora_alpha / r`; `alpha / √r` with rsLoRA), 1 when the file gives no alpha.
    public let scale: Float
}

/// A LoRA file read into memory: every low-rank pair with its scale, validated (both halves present, ranks that
/// agree, finite values), in any float dtype of the file (f32, bf16, f16, fp8).
public struct LoRAFile: Sendable {
    /// The file path (or the name given to in-memory tensors), used in errors.
    public let source: String
    /// The naming family most pairs follow.
    public let format: LoRAFormat
    public let pairs: [LoRAPair]
    /// Keys for text encoders (`lora_te…`, `text_encoder…`), which the transformer does not use.
    public let ignoredKeys: [String]

    /// Reads a `.safetensors` LoRA file.
    /// - Throws: `LoRAError` listing every key that is not a LoRA tensor, lacks its other half, disagrees on the
    ///   rank, or holds non-finite values; `SafeTensorsError` when the file cannot be read.
    public init(path: String) throws {
        let file = try SafeTensorsCheckpoint(path: path)
        let metadata = try file.files().first?.metadata
        try self.init(tensors: file, metadata: metadata, source: path)
    }

    /// Reads LoRA tensors from any provider; `metadata` may hold PEFT's `lora_adapter_metadata`.
    public init(tensors: any TensorProvider, metadata: [String: String]?, source: String) throws {
        var problems: [String] = []
        var ignored: [String] = []
        var parts: [String: (format: LoRAFormat, down: Tensor?, up: Tensor?, alpha: Float?)] = [:]
        let peftAlphas = LoRAAdapterMetadata(metadata?["lora_adapter_metadata"])
        for name in tensors.tensorNames {
            if LoRAKeys.isTextEncoderKey(name) {
                ignored.append(name)
                continue
            }
            guard let parsed = LoRAKeys.parse(name) else {
                problems.append("\(name): not a LoRA tensor of a supported kind (lora_A/lora_B, lora_down/lora_up, XLabs down/up, alpha)")
                continue
            }
            var entry = parts[parsed.module] ?? (parsed.format, nil, nil, nil)
            if parsed.role != .alpha { entry.format = parsed.format }
            let tensor = try tensors.tensor(named: name)
            switch parsed.role {
            case .down: entry.down = tensor
            case .up: entry.up = tensor
            case .alpha:
                guard tensor.elementCount == 1, tensor.dtype.isFloatingPoint || tensor.dtype == .i64 || tensor.dtype == .i32 else {
                    problems.append("\(name): an alpha must be one number, found \(tensor.dtype) \(tensor.shape)")
                    continue
                }
                entry.alpha = tensor.dtype.isFloatingPoint ? tensor.floats()[0] : Float(tensor.doubles()[0])
            }
            parts[parsed.module] = entry
        }
        var pairs: [LoRAPair] = []
        for module in parts.keys.sorted() {
            let entry = parts[module]!
            guard let down = entry.down, let up = entry.up else {
                problems.append("\(module): has \(entry.down == nil ? "no down (lora_A/lora_down)" : "no up (lora_B/lora_up)") tensor")
                continue
            }
            guard down.rank == 2, up.rank == 2, down.dtype.isFloatingPoint, up.dtype.isFloatingPoint else {
                problems.append("\(module): down \(down.dtype) \(down.shape) and up \(up.dtype) \(up.shape) must be float matrices")
                continue
            }
            let rank = down.shape[0]
            guard up.shape[1] == rank, rank > 0 else {
                problems.append("\(module): rank mismatch: down \(down.shape) has rank \(rank), up \(up.shape) has rank \(up.shape[1])")
                continue
            }
            let downValues = down.contiguous().floats(), upValues = up.contiguous().floats()
            if let bad = (downValues + upValues).first(where: { !$0.isFinite }) {
                problems.append("\(module): holds a non-finite value (\(bad))")
                continue
            }
            let alpha = entry.alpha ?? peftAlphas.alpha(forModule: module)
            if let alpha, !alpha.isFinite {
                problems.append("\(module).alpha: is not finite (\(alpha))")
                continue
            }
            let scale = alpha.map { peftAlphas.useRSLoRA ? $0 / Float(rank).squareRoot() : $0 / Float(rank) } ?? 1
            pairs.append(LoRAPair(
                key: module, format: entry.format, down: downValues, up: upValues, rank: rank, inFeatures: down.shape[1],
                outFeatures: up.shape[0], scale: scale))
        }
        if pairs.isEmpty, problems.isEmpty {
            problems.append("holds no LoRA pairs for the transformer" + (ignored.isEmpty ? "" : " (only text-encoder keys)"))
        }
        guard problems.isEmpty else { throw LoRAError(file: source, problems: problems) }
        var counts: [LoRAFormat: Int] = [:]
        for pair in pairs { counts[pair.format, default: 0] += 1 }
        self.source = source
        self.format = LoRAFormat.allCases.max { counts[$0, default: 0] < counts[$1, default: 0] }!
        self.pairs = pairs
        self.ignoredKeys = ignored
    }
}

/// PEFT's adapter config as diffusers saves it in the `lora_adapter_metadata` entry: `lora_alpha`, `alpha_pattern`,
/// `use_rslora`. Without it a diffusers file has alpha = rank (scale 1).
struct LoRAAdapterMetadata {
    var alpha: Float?
    var patterns: [(String, Float)] = []
    var useRSLoRA = false

    init(_ text: String?) {
        guard let text, let config = try? JSONValue.parse(Array(text.utf8)) else { return }
        alpha = Self.number(config["lora_alpha"])
        useRSLoRA = config["use_rslora"] == .bool(true)
        for member in config["alpha_pattern"]?.objectMembers ?? [] {
            if let value = Self.number(member.value) { patterns.append((member.key, value)) }
        }
    }

    /// The alpha of `module` (a file key such as `transformer.transformer_blocks.0.attn.to_q`).
    func alpha(forModule module: String) -> Float? {
        for (pattern, value) in patterns where module == pattern || module.hasSuffix("." + pattern) { return value }
        return alpha
    }

    private static func number(_ value: JSONValue?) -> Float? {
        switch value {
        case let .integer(number)?: Float(number)
        case let .number(number)?: Float(number)
        default: nil
        }
    }
}
