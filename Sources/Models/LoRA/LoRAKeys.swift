/// Reads LoRA tensor names: which module a key belongs to, its role (down, up, alpha) and its naming family, and
/// the diffusers modules a module key stands for (research/diffusion-architectures.md §6, §6.1).
enum LoRAKeys {
    enum Role { case down, up, alpha }

    /// What one file key holds: the module key (the name without its role suffix), the role and the family.
    struct Parsed {
        let module: String
        let role: Role
        let format: LoRAFormat
    }

    /// Text-encoder keys (kohya `lora_te…`, diffusers `text_encoder…`, ComfyUI `text_encoders.…`).
    static func isTextEncoderKey(_ name: String) -> Bool {
        ["lora_te", "text_encoder", "text_encoders."].contains { name.hasPrefix($0) }
    }

    /// The key's module, role and family, or nil when it is no LoRA tensor kind this reader knows.
    static func parse(_ name: String) -> Parsed? {
        let suffixes: [(String, Role)] = [
            (".lora_A.weight", .down), (".lora_B.weight", .up), (".lora_down.weight", .down), (".lora_up.weight", .up),
            (".lora.down.weight", .down), (".lora.up.weight", .up), (".down.weight", .down), (".up.weight", .up),
            (".alpha", .alpha),
        ]
        guard let (suffix, role) = suffixes.first(where: { name.hasSuffix($0.0) }) else { return nil }
        let module = String(name.dropLast(suffix.count))
        if suffix == ".down.weight" || suffix == ".up.weight" {
            return module.contains(".processor.") ? Parsed(module: module, role: role, format: .xlabs) : nil
        }
        let format: LoRAFormat
        if module.hasPrefix("lora_unet_") {
            format = .kohya
        } else if module.contains(".processor.") {
            format = .xlabs
        } else if suffix.hasPrefix(".lora_down") || suffix.hasPrefix(".lora_up") {
            format = .comfyUI
        } else {
            format = isBFLName(stripPrefixes(module)) ? .bflOriginal : .diffusers
        }
        return Parsed(module: module, role: role, format: format)
    }

    /// `name` without the wrappers files put around module names.
    static func stripPrefixes(_ name: String) -> String {
        for prefix in ["base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer."] where name.hasPrefix(prefix) {
            return String(name.dropFirst(prefix.count))
        }
        return name
    }

    private static let bflTopLevel = ["img_in", "txt_in", "time_in.", "vector_in.", "guidance_in.", "final_layer."]

    static func isBFLName(_ name: String) -> Bool {
        name.hasPrefix("double_blocks.") || name.hasPrefix("single_blocks.") || bflTopLevel.contains { name.hasPrefix($0) }
    }

    /// The BFL dotted name of a kohya module key (`lora_unet_double_blocks_0_img_attn_qkv` →
    /// `double_blocks.0.img_attn.qkv`), or nil when the key is not one kohya writes for FLUX.
    static func kohyaToBFL(_ module: String) -> String? {
        let name = String(module.dropFirst("lora_unet_".count))
        let parts = name.split(separator: "_", maxSplits: 3).map(String.init)
        if parts.count >= 4, parts[1] == "blocks", let index = Int(parts[2]) {
            let table = parts[0] == "double" ? kohyaDoubleBlock : parts[0] == "single" ? kohyaSingleBlock : [:]
            guard let suffix = table[parts[3]] else { return nil }
            return "\(parts[0])_blocks.\(index).\(suffix)"
        }
        return kohyaTopLevel[name]
    }

    private static let kohyaDoubleBlock: [String: String] = {
        var table: [String: String] = [:]
        for stream in ["img", "txt"] {
            for (kohya, bfl) in [("attn_qkv", "attn.qkv"), ("attn_proj", "attn.proj"), ("mlp_0", "mlp.0"), ("mlp_2", "mlp.2"), ("mod_lin", "mod.lin")] {
                table["\(stream)_\(kohya)"] = "\(stream)_\(bfl)"
            }
        }
        return table
    }()
    private static let kohyaSingleBlock = ["linear1": "linear1", "linear2": "linear2", "modulation_lin": "modulation.lin"]
    private static let kohyaTopLevel = [
        "img_in": "img_in", "txt_in": "txt_in", "time_in_in_layer": "time_in.in_layer", "time_in_out_layer": "time_in.out_layer",
        "vector_in_in_layer": "vector_in.in_layer", "vector_in_out_layer": "vector_in.out_layer",
        "guidance_in_in_layer": "guidance_in.in_layer", "guidance_in_out_layer": "guidance_in.out_layer",
        "final_layer_linear": "final_layer.linear", "final_layer_adaLN_modulation_1": "final_layer.adaLN_modulation.1",
    ]
}
