import Models

/// How a layer of the quantized checkpoint is stored.
public enum PlannedLayerKind: Sendable, Equatable, CustomStringConvertible {
    /// SVDQuant W4A4 (`qweight`, `wscales`, `smooth`, `lora_down`/`lora_up`, …); the input kind decides the INT4
    /// activation quantizer.
    case w4a4(LinearInputKind)
    /// An adaLN modulation linear as AWQ W4A16 (group 64) with its `chunks` outputs interleaved and the +1 of the
    /// scale chunks folded into the bias (research/nunchaku-internals.md §2.7).
    case awqModulation(chunks: Int)

    public var description: String {
        switch self {
        case .w4a4(.general): "W4A4"
        case .w4a4(.postGELU): "W4A4 post-GELU"
        case .awqModulation: "AWQ W4A16"
        }
    }
}

/// Where a planned layer's full-precision weight and bias come from in the diffusers checkpoint.
public enum PlannedLayerSource: Sendable, Equatable {
    /// These linears' weights stacked along the output axis (`to_q ‖ to_k ‖ to_v`), biases concatenated.
    case stackedRows([String])
    /// One half of a single block's `proj_out` [D, D + 4D], split after input column D: the attention half (zero
    /// bias) or the MLP half (the real bias), as `SingleBlockProjOutSplit` does.
    case projOutHalf(String, ProjOutHalf)

    public enum ProjOutHalf: Sendable, Equatable {
        case attention
        case mlp
    }

    /// The diffusers linears whose `.weight` and `.bias` this source reads.
    public var linears: [String] {
        switch self {
        case let .stackedRows(names): names
        case let .projOutHalf(name, _): [name]
        }
    }
}

/// The input a W4A4 layer sees, as recorded while the diffusers model runs: the input of `linear`, restricted to
/// `columns` when the layer takes only part of it (the two halves of a single block's `proj_out`).
public struct CalibrationPoint: Sendable, Equatable, Hashable {
    /// The diffusers linear whose input is recorded.
    public let linear: String
    /// The width of that linear's input.
    public let inputWidth: Int
    /// The input columns this layer takes; nil means all of them.
    public let columns: Range<Int>?
}

/// One layer of the Nunchaku checkpoint: its C++ name (research §1.4), storage kind, shape and sources.
public struct PlannedLayer: Sendable, Equatable {
    /// The checkpoint key prefix, e.g. `transformer_blocks.0.qkv_proj`.
    public let name: String
    public let kind: PlannedLayerKind
    public let source: PlannedLayerSource
    /// N.
    public let outFeatures: Int
    /// K.
    public let inFeatures: Int
    /// Where the calibration activations come from; nil for AWQ layers (weight-only quantization).
    public let calibration: CalibrationPoint?
}

/// Every layer and tensor of a Nunchaku FLUX checkpoint and where it comes from in a diffusers
/// `FluxTransformer2DModel` checkpoint (research/nunchaku-internals.md §1.4, deepcompressor's FLUX converter).
///
/// Double blocks: `norm1.linear`, `norm1_context.linear` (AWQ, 6 chunks); `qkv_proj` (= to_q ‖ to_k ‖ to_v),
/// `qkv_proj_context` (= add_q ‖ add_k ‖ add_v), `out_proj`, `out_proj_context`, `mlp_fc1`, `mlp_fc2`,
/// `mlp_context_fc1`, `mlp_context_fc2` (W4A4; the fc2s post-GELU). Single blocks: `norm.linear` (AWQ, 3 chunks);
/// `qkv_proj`, `mlp_fc1` (= proj_mlp, same input as qkv), `out_proj` and `mlp_fc2` (the two halves of proj_out).
/// The qk-norm weights move from `attn.norm_*` to `norm_*`; everything outside the blocks stays BF16 under its
/// diffusers name.
public struct FluxQuantizationPlan: Sendable {
    public let config: FluxConfig
    /// The quantized layers, block by block.
    public let layers: [PlannedLayer]
    /// BF16 tensors of the blocks that only change name (qk-norm weights): diffusers name → Nunchaku name.
    public let renamedTensors: [(from: String, to: String)]
    /// W4A4 layers that read the same input, as adjacent indices into `layers`: each single block's `qkv_proj` and
    /// `mlp_fc1`. DeepCompressor gives them one smoothing vector, and the fast CUDA path then smooths and quantizes
    /// their input once for both (`SVDQuantizer.quantize(sharingSmoothing:…)`, `SVDQuantConfiguration.sharedSmoothing`).
    public let sharedInputGroups: [[Int]]

    public init(config: FluxConfig) {
        self.config = config
        let width = config.innerDim, hidden = config.mlpHiddenDim
        var layers: [PlannedLayer] = []
        var renamed: [(String, String)] = []
        var groups: [[Int]] = []
        func w4a4(_ name: String, _ kind: LinearInputKind, _ source: PlannedLayerSource, _ k: Int, _ n: Int,
                  _ calibration: CalibrationPoint) {
            layers.append(PlannedLayer(name: name, kind: .w4a4(kind), source: source, outFeatures: n, inFeatures: k,
                                       calibration: calibration))
        }
        func modulation(_ name: String, chunks: Int) {
            layers.append(PlannedLayer(name: name, kind: .awqModulation(chunks: chunks), source: .stackedRows([name]),
                                       outFeatures: chunks * width, inFeatures: width, calibration: nil))
        }
        func input(_ linear: String, _ width: Int = width) -> CalibrationPoint {
            CalibrationPoint(linear: linear, inputWidth: width, columns: nil)
        }
        func single(_ p: String, _ suffix: String) -> PlannedLayerSource { .stackedRows(["\(p).\(suffix)"]) }
        for index in 0..<config.numLayers {
            let p = "transformer_blocks.\(index)"
            modulation("\(p).norm1.linear", chunks: 6)
            modulation("\(p).norm1_context.linear", chunks: 6)
            let qkv = ["to_q", "to_k", "to_v"].map { "\(p).attn.\($0)" }
            let contextQKV = ["add_q_proj", "add_k_proj", "add_v_proj"].map { "\(p).attn.\($0)" }
            w4a4("\(p).qkv_proj", .general, .stackedRows(qkv), width, 3 * width, input(qkv[0]))
            w4a4("\(p).qkv_proj_context", .general, .stackedRows(contextQKV), width, 3 * width, input(contextQKV[0]))
            w4a4("\(p).out_proj", .general, single(p, "attn.to_out.0"), width, width, input("\(p).attn.to_out.0"))
            w4a4("\(p).out_proj_context", .general, single(p, "attn.to_add_out"), width, width, input("\(p).attn.to_add_out"))
            w4a4("\(p).mlp_fc1", .general, single(p, "ff.net.0.proj"), width, hidden, input("\(p).ff.net.0.proj"))
            w4a4("\(p).mlp_fc2", .postGELU, single(p, "ff.net.2"), hidden, width, input("\(p).ff.net.2", hidden))
            w4a4("\(p).mlp_context_fc1", .general, single(p, "ff_context.net.0.proj"), width, hidden,
                 input("\(p).ff_context.net.0.proj"))
            w4a4("\(p).mlp_context_fc2", .postGELU, single(p, "ff_context.net.2"), hidden, width,
                 input("\(p).ff_context.net.2", hidden))
            for norm in ["norm_q", "norm_k", "norm_added_q", "norm_added_k"] {
                renamed.append(("\(p).attn.\(norm).weight", "\(p).\(norm).weight"))
            }
        }
        for index in 0..<config.numSingleLayers {
            let p = "single_transformer_blocks.\(index)"
            modulation("\(p).norm.linear", chunks: 3)
            let qkv = ["to_q", "to_k", "to_v"].map { "\(p).attn.\($0)" }
            // qkv_proj and mlp_fc1 read the same normalized tokens: both are calibrated on to_q's input.
            groups.append([layers.count, layers.count + 1])
            w4a4("\(p).qkv_proj", .general, .stackedRows(qkv), width, 3 * width, input(qkv[0]))
            w4a4("\(p).mlp_fc1", .general, single(p, "proj_mlp"), width, hidden, input(qkv[0]))
            let projOut = "\(p).proj_out"
            w4a4("\(p).out_proj", .general, .projOutHalf(projOut, .attention), width, width,
                 CalibrationPoint(linear: projOut, inputWidth: width + hidden, columns: 0..<width))
            w4a4("\(p).mlp_fc2", .postGELU, .projOutHalf(projOut, .mlp), hidden, width,
                 CalibrationPoint(linear: projOut, inputWidth: width + hidden, columns: width..<(width + hidden)))
            for norm in ["norm_q", "norm_k"] { renamed.append(("\(p).attn.\(norm).weight", "\(p).\(norm).weight")) }
        }
        self.layers = layers
        self.renamedTensors = renamed
        self.sharedInputGroups = groups
    }

    /// The W4A4 layers (the ones that take calibration activations).
    public var w4a4Layers: [PlannedLayer] { layers.filter { $0.calibration != nil } }

    /// Every diffusers linear whose input the calibration run records, with its input width.
    public var calibrationInputs: [String: Int] {
        var widths: [String: Int] = [:]
        for point in layers.compactMap(\.calibration) { widths[point.linear] = point.inputWidth }
        return widths
    }

    /// Every diffusers tensor inside the blocks that the plan reads (weights, biases, qk-norm weights).
    public var consumedBlockTensors: Set<String> {
        var names = Set(renamedTensors.map(\.from))
        for layer in layers {
            for linear in layer.source.linears { names.formUnion(["\(linear).weight", "\(linear).bias"]) }
        }
        return names
    }

    /// Whether `name` belongs to a transformer block (and so must be consumed by the plan); the others are kept as
    /// BF16 under their own names (Nunchaku's `unquantized_layers`).
    public static func isBlockTensor(_ name: String) -> Bool {
        name.hasPrefix("transformer_blocks.") || name.hasPrefix("single_transformer_blocks.")
    }
}
