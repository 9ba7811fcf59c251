/// The two names of FLUX.1's block modules in Nunchaku checkpoints (research/nunchaku-internals.md §1.1c, §1.4):
/// the C++ engine's (`transformer_blocks.0.qkv_proj`), used by merged and legacy files and by this engine's models,
/// and the Python `NunchakuFluxTransformer2DModelV2`'s (`transformer_blocks.0.attn.to_qkv`), used by Python-named
/// files and by Nunchaku-Lite output. Names outside the blocks, and block modules not listed (`norm1.linear`,
/// `norm.linear`, single-block `mlp_fc1`/`mlp_fc2`), are the same in both.
public enum FluxModuleNames {
    /// Double-block (`transformer_blocks.N.`) modules: C++ name, Python name.
    static let doubleBlock: [(cpp: String, python: String)] = [
        ("qkv_proj", "attn.to_qkv"), ("qkv_proj_context", "attn.add_qkv_proj"),
        ("out_proj", "attn.to_out.0"), ("out_proj_context", "attn.to_add_out"),
        ("mlp_fc1", "ff.net.0.proj"), ("mlp_fc2", "ff.net.2"),
        ("mlp_context_fc1", "ff_context.net.0.proj"), ("mlp_context_fc2", "ff_context.net.2"),
        ("norm_q", "attn.norm_q"), ("norm_k", "attn.norm_k"),
        ("norm_added_q", "attn.norm_added_q"), ("norm_added_k", "attn.norm_added_k"),
    ]

    /// Single-block (`single_transformer_blocks.N.`) modules: C++ name, Python name.
    static let singleBlock: [(cpp: String, python: String)] = [
        ("qkv_proj", "attn.to_qkv"), ("out_proj", "attn.to_out"), ("norm_q", "attn.norm_q"), ("norm_k", "attn.norm_k"),
    ]

    /// `name` (a module path or a tensor name) with a Python block-module name replaced by the C++ one.
    public static func cpp(fromPython name: String) -> String {
        rename(name, from: \.python, to: \.cpp)
    }

    /// `name` (a module path or a tensor name) with a C++ block-module name replaced by the Python one.
    public static func python(fromCpp name: String) -> String {
        rename(name, from: \.cpp, to: \.python)
    }

    /// Whether `name` lies inside a FLUX single-stream block (which only FLUX has among Nunchaku's models).
    static func isSingleBlockName(_ name: String) -> Bool {
        blockPrefix(of: name)?.single == true
    }

    private typealias Side = KeyPath<(cpp: String, python: String), String>

    private static func rename(_ name: String, from: Side, to: Side) -> String {
        guard let (prefix, single) = blockPrefix(of: name) else { return name }
        let rest = name.dropFirst(prefix.count)
        for entry in single ? singleBlock : doubleBlock {
            let module = entry[keyPath: from]
            if rest == module || rest.hasPrefix(module + ".") {
                return prefix + entry[keyPath: to] + rest.dropFirst(module.count)
            }
        }
        return name
    }

    /// `transformer_blocks.N.` or `single_transformer_blocks.N.` at the start of `name`.
    private static func blockPrefix(of name: String) -> (prefix: String, single: Bool)? {
        for (blocks, single) in [("transformer_blocks.", false), ("single_transformer_blocks.", true)] {
            guard name.hasPrefix(blocks) else { continue }
            let digits = name.dropFirst(blocks.count).prefix { $0.isASCII && $0.isNumber }
            let end = blocks.count + digits.count
            guard !digits.isEmpty, name.count > end, name[name.index(name.startIndex, offsetBy: end)] == "." else { return nil }
            return (String(name.prefix(end + 1)), single)
        }
        return nil
    }
}
