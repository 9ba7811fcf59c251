/// The diffusers modules one LoRA pair changes, after its family's names are read
/// (research/diffusion-architectures.md §6, §6.1).
enum LoRATarget: Equatable {
    /// One module.
    case module(String)
    /// Several modules whose outputs the pair's `up` stacks in this order (BFL `qkv` and `linear1`, XLabs `qkv_lora`):
    /// the rows are split by the modules' widths, and the down is shared.
    case fused([String])
    /// BFL's `final_layer.adaLN_modulation.1`, whose output is `[shift; scale]`, where diffusers' `norm_out.linear`
    /// has `[scale; shift]`: the halves of `up` are swapped.
    case swappedHalves(String)

    /// The target of a file's module key, or nil when the key names nothing in a FLUX transformer.
    init?(key: String, format: LoRAFormat) {
        switch format {
        case .diffusers:
            let name = LoRAKeys.stripPrefixes(key)
            self = .module(name.hasSuffix(".lora") ? String(name.dropLast(5)) : name)
        case .bflOriginal, .comfyUI:
            guard let target = Self.fromBFL(LoRAKeys.stripPrefixes(key)) else { return nil }
            self = target
        case .kohya:
            guard let name = LoRAKeys.kohyaToBFL(key), let target = Self.fromBFL(name) else { return nil }
            self = target
        case .xlabs:
            guard let target = Self.fromXLabs(LoRAKeys.stripPrefixes(key)) else { return nil }
            self = target
        }
    }

    /// The modules the target touches.
    var modules: [String] {
        switch self {
        case let .module(name), let .swappedHalves(name): [name]
        case let .fused(names): names
        }
    }

    /// `(block kind, index, rest)` of `double_blocks.3.img_attn.qkv`-style names.
    private static func block(_ name: String) -> (kind: Substring, index: Int, rest: String)? {
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "double_blocks" || parts[0] == "single_blocks", let index = Int(parts[1]) else { return nil }
        return (parts[0], index, String(parts[2]))
    }

    private static let topLevel: [String: LoRATarget] = [
        "img_in": .module("x_embedder"), "txt_in": .module("context_embedder"),
        "time_in.in_layer": .module("time_text_embed.timestep_embedder.linear_1"),
        "time_in.out_layer": .module("time_text_embed.timestep_embedder.linear_2"),
        "vector_in.in_layer": .module("time_text_embed.text_embedder.linear_1"),
        "vector_in.out_layer": .module("time_text_embed.text_embedder.linear_2"),
        "guidance_in.in_layer": .module("time_text_embed.guidance_embedder.linear_1"),
        "guidance_in.out_layer": .module("time_text_embed.guidance_embedder.linear_2"),
        "final_layer.linear": .module("proj_out"), "final_layer.adaLN_modulation.1": .swappedHalves("norm_out.linear"),
    ]

    static func fromBFL(_ name: String) -> LoRATarget? {
        if let target = topLevel[name] { return target }
        guard let (kind, index, rest) = block(name) else { return nil }
        if kind == "double_blocks" {
            let p = "transformer_blocks.\(index)"
            let table: [String: LoRATarget] = [
                "img_mod.lin": .module("\(p).norm1.linear"), "txt_mod.lin": .module("\(p).norm1_context.linear"),
                "img_attn.qkv": .fused(["\(p).attn.to_q", "\(p).attn.to_k", "\(p).attn.to_v"]),
                "txt_attn.qkv": .fused(["\(p).attn.add_q_proj", "\(p).attn.add_k_proj", "\(p).attn.add_v_proj"]),
                "img_attn.proj": .module("\(p).attn.to_out.0"), "txt_attn.proj": .module("\(p).attn.to_add_out"),
                "img_mlp.0": .module("\(p).ff.net.0.proj"), "img_mlp.2": .module("\(p).ff.net.2"),
                "txt_mlp.0": .module("\(p).ff_context.net.0.proj"), "txt_mlp.2": .module("\(p).ff_context.net.2"),
            ]
            return table[rest]
        }
        let p = "single_transformer_blocks.\(index)"
        let table: [String: LoRATarget] = [
            "modulation.lin": .module("\(p).norm.linear"),
            "linear1": .fused(["\(p).attn.to_q", "\(p).attn.to_k", "\(p).attn.to_v", "\(p).proj_mlp"]),
            "linear2": .module("\(p).proj_out"),
        ]
        return table[rest]
    }

    static func fromXLabs(_ name: String) -> LoRATarget? {
        guard let (kind, index, rest) = block(name) else { return nil }
        if kind == "double_blocks" {
            let p = "transformer_blocks.\(index).attn"
            let table: [String: LoRATarget] = [
                "processor.qkv_lora1": .fused(["\(p).to_q", "\(p).to_k", "\(p).to_v"]),
                "processor.qkv_lora2": .fused(["\(p).add_q_proj", "\(p).add_k_proj", "\(p).add_v_proj"]),
                "processor.proj_lora1": .module("\(p).to_out.0"), "processor.proj_lora2": .module("\(p).to_add_out"),
            ]
            return table[rest]
        }
        let p = "single_transformer_blocks.\(index)"
        let table: [String: LoRATarget] = [
            "processor.qkv_lora": .fused(["\(p).attn.to_q", "\(p).attn.to_k", "\(p).attn.to_v"]),
            "processor.proj_lora": .module("\(p).proj_out"),
        ]
        return table[rest]
    }
}
