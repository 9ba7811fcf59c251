import NunchakuCore

/// How a FLUX checkpoint names and shapes the linears inside its blocks. Everything outside the blocks
/// (embedders, `norm_out`, `proj_out`) uses diffusers names in both layouts.
public enum FluxCheckpointLayout: String, Sendable, CaseIterable {
    /// diffusers `FluxTransformer2DModel`: separate `to_q`/`to_k`/`to_v`, adaLN outputs chunked in order and used as
    /// `x·(1+scale)+shift`, one single-block `proj_out` over `[attention ‖ mlp]`.
    case diffusers
    /// Nunchaku's FLUX engine (research: nunchaku-internals §1.4, §2.7): fused `qkv_proj`/`qkv_proj_context`,
    /// `out_proj`, `mlp_fc1/2`, adaLN output rows interleaved with the +1 folded into the scale biases
    /// (`x·scale+shift`), and the single-block `proj_out` split into `out_proj` (attention) + `mlp_fc2` (MLP).
    case nunchaku
}

/// The checkpoint names of one attention input projection: three layers or one fused `q ‖ k ‖ v` layer.
enum QKVNames: Equatable {
    case separate(query: String, key: String, value: String)
    case fused(String)

    /// The layer names: query, key, value when separate; the one fused layer otherwise.
    var layerNames: [String] {
        switch self {
        case let .separate(query, key, value): [query, key, value]
        case let .fused(name): [name]
        }
    }
}

/// How a checkpoint stores an adaptive-norm linear's S chunks of width D, and how the scale chunks are applied.
struct ModulationLayout: Equatable, Sendable {
    /// true: output column `d·S + s` holds chunk s, element d, and the +1 is folded into the scale biases
    /// (Nunchaku, AWQ W4A16 in quantized checkpoints); false: chunk s is columns `s·D ..< (s+1)·D` (diffusers).
    let interleaved: Bool
    /// The constant added to scale chunks before multiplying: 1 for diffusers, 0 where the bias already holds it.
    var scaleOffset: Float { interleaved ? 0 : 1 }

    static let diffusers = ModulationLayout(interleaved: false)
    static let nunchaku = ModulationLayout(interleaved: true)

    /// The spec of the adaLN linear `name` (`width → chunks·width`).
    func spec(name: String, width: Int, chunks: Int) -> LinearLayerSpec {
        LinearLayerSpec(name: name, inFeatures: width, outFeatures: chunks * width, quantization: interleaved ? .awqW4A16 : .none)
    }
}

extension FluxCheckpointLayout {
    /// How SVDQuant checkpoints of this layout store a block projection (QKV, output, MLP): W4A4 in Nunchaku's
    /// layout (research §1.4); the diffusers layout has no quantized form here.
    func projectionQuantization(inputFollowsGELU: Bool) -> LinearLayerSpec.Quantization {
        self == .nunchaku ? .w4a4(inputFollowsGELU: inputFollowsGELU) : .none
    }
}

/// Every checkpoint name of a double-stream block (`transformer_blocks.i`).
struct FluxDoubleBlockNames {
    let imageModulation, contextModulation: String
    let imageQKV, contextQKV: QKVNames
    let imageOut, contextOut: String
    let imageMLPIn, imageMLPOut, contextMLPIn, contextMLPOut: String
    let queryNorm, keyNorm, contextQueryNorm, contextKeyNorm: String
    let modulation: ModulationLayout

    init(index: Int, layout: FluxCheckpointLayout) {
        let p = "transformer_blocks.\(index)"
        imageModulation = "\(p).norm1.linear"
        contextModulation = "\(p).norm1_context.linear"
        switch layout {
        case .diffusers:
            imageQKV = .separate(query: "\(p).attn.to_q", key: "\(p).attn.to_k", value: "\(p).attn.to_v")
            contextQKV = .separate(query: "\(p).attn.add_q_proj", key: "\(p).attn.add_k_proj", value: "\(p).attn.add_v_proj")
            imageOut = "\(p).attn.to_out.0"
            contextOut = "\(p).attn.to_add_out"
            imageMLPIn = "\(p).ff.net.0.proj"
            imageMLPOut = "\(p).ff.net.2"
            contextMLPIn = "\(p).ff_context.net.0.proj"
            contextMLPOut = "\(p).ff_context.net.2"
            queryNorm = "\(p).attn.norm_q.weight"
            keyNorm = "\(p).attn.norm_k.weight"
            contextQueryNorm = "\(p).attn.norm_added_q.weight"
            contextKeyNorm = "\(p).attn.norm_added_k.weight"
            modulation = .diffusers
        case .nunchaku:
            imageQKV = .fused("\(p).qkv_proj")
            contextQKV = .fused("\(p).qkv_proj_context")
            imageOut = "\(p).out_proj"
            contextOut = "\(p).out_proj_context"
            imageMLPIn = "\(p).mlp_fc1"
            imageMLPOut = "\(p).mlp_fc2"
            contextMLPIn = "\(p).mlp_context_fc1"
            contextMLPOut = "\(p).mlp_context_fc2"
            queryNorm = "\(p).norm_q.weight"
            keyNorm = "\(p).norm_k.weight"
            contextQueryNorm = "\(p).norm_added_q.weight"
            contextKeyNorm = "\(p).norm_added_k.weight"
            modulation = .nunchaku
        }
    }
}

/// Every checkpoint name of a single-stream block (`single_transformer_blocks.i`).
struct FluxSingleBlockNames {
    /// The block's output projection: one layer over `[attention ‖ mlp]`, or two layers whose outputs are summed.
    enum Output: Equatable {
        case joint(String)
        case split(attention: String, mlp: String)

        /// The layer names: the joint projection, or the attention then the MLP projection.
        var layerNames: [String] {
            switch self {
            case let .joint(name): [name]
            case let .split(attention, mlp): [attention, mlp]
            }
        }
    }

    let modulationName: String
    let qkv: QKVNames
    let mlpIn: String
    let output: Output
    let queryNorm, keyNorm: String
    let modulation: ModulationLayout

    init(index: Int, layout: FluxCheckpointLayout) {
        let p = "single_transformer_blocks.\(index)"
        modulationName = "\(p).norm.linear"
        switch layout {
        case .diffusers:
            qkv = .separate(query: "\(p).attn.to_q", key: "\(p).attn.to_k", value: "\(p).attn.to_v")
            mlpIn = "\(p).proj_mlp"
            output = .joint("\(p).proj_out")
            queryNorm = "\(p).attn.norm_q.weight"
            keyNorm = "\(p).attn.norm_k.weight"
            modulation = .diffusers
        case .nunchaku:
            qkv = .fused("\(p).qkv_proj")
            mlpIn = "\(p).mlp_fc1"
            output = .split(attention: "\(p).out_proj", mlp: "\(p).mlp_fc2")
            queryNorm = "\(p).norm_q.weight"
            keyNorm = "\(p).norm_k.weight"
            modulation = .nunchaku
        }
    }
}

/// Names outside the blocks (identical in both layouts).
enum FluxTopLevelNames {
    static let imageEmbedder = "x_embedder"
    static let contextEmbedder = "context_embedder"
    static let timestepEmbedder = "time_text_embed.timestep_embedder"
    static let guidanceEmbedder = "time_text_embed.guidance_embedder"
    static let textEmbedder = "time_text_embed.text_embedder"
    static let outputModulation = "norm_out.linear"
    static let outputProjection = "proj_out"
}

extension FluxCheckpointLayout {
    /// The layout whose first block projection a checkpoint holds, or nil when it has neither (no double blocks, or
    /// not a FLUX checkpoint). Looks at names only.
    public static func detect(in weights: any TensorProvider) -> FluxCheckpointLayout? {
        let names = Set(weights.tensorNames)
        for layout in allCases {
            let block = FluxDoubleBlockNames(index: 0, layout: layout)
            if names.contains(where: { $0.hasPrefix(block.imageQKV.layerNames[0] + ".") }) { return layout }
            let single = FluxSingleBlockNames(index: 0, layout: layout)
            if names.contains(where: { $0.hasPrefix(single.qkv.layerNames[0] + ".") }) { return layout }
        }
        return nil
    }
}
