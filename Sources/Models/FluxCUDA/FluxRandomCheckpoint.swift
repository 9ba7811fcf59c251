import CPUBackend
import NunchakuCore
import SVDQuant

/// A random-weight FLUX transformer made in memory, layer by layer as a model asks for it: for runs at the real size
/// (memory, speed) without a checkpoint on disk, and for GPU-against-CPU checks at any size.
///
/// Every tensor is a function of `(seed, tensor name)` (`FluxRandomValues`), so the CPU and the GPU model built from
/// the same value get the same weights. The values are chosen so activations stay of order one through all blocks:
/// - dense layers: weight and bias uniform in ±1/√K (PyTorch's default `nn.Linear` init);
/// - SVDQuant W4A4 layers (`int4`, `nvfp4`): uniform 4-bit codes; INT4 group scales (1 ± ½)·p/8 with p = 1/√K, so
///   weights have an RMS of about 0.6p; NVFP4 micro-scales 1–1.875 (e4m3) with a per-tensor `wtscale` p/8, or, for
///   the fused QKV layers (as Nunchaku's converter writes them), per-channel `wcscales` (1 ± ½)·p/8 instead;
///   smoothing factors 1 ± ½ (a single block's `mlp_fc1` takes its `qkv_proj`'s vector: both read the same
///   normalized tokens, and DeepCompressor smooths them with one vector); low-rank `proj_down` ±p, `proj_up` ±¼;
///   bias ±⅛;
/// - AWQ W4A16 adaLN layers: uniform codes, scales (1 ± ½)·p/8, zeros −8·scale, bias ±⅛; outputs interleaved
///   with the +1 folded into the scale chunks' bias, as Nunchaku stores them;
/// - RMSNorm weights 1 ± ¼.
///
/// `bf16` models use the diffusers layout (what a diffusers checkpoint holds); `int4`/`nvfp4` models the Nunchaku
/// layout (what a Nunchaku merged file holds: W4A4 block projections, AWQ adaLN, BF16 rest).
public struct FluxRandomCheckpoint: Sendable {
    /// How the layers are stored.
    public enum Format: String, Sendable, CaseIterable, CustomStringConvertible {
        /// Every layer dense, diffusers layout.
        case bf16
        /// SVDQuant INT4 (Nunchaku layout).
        case int4
        /// SVDQuant NVFP4 (Nunchaku layout).
        case nvfp4

        public var description: String { rawValue }
    }

    public let config: FluxConfig
    public let format: Format
    /// The low-rank branch's rank of W4A4 layers.
    public let rank: Int
    public let seed: UInt64
    private let values: FluxRandomValues

    /// - Throws: `NunchakuError.invalidArgument` when the config is invalid, the rank is not a positive multiple of
    ///   16, or (quantized formats) the width or MLP width is not a multiple of 128, which W4A4 layers need.
    public init(config: FluxConfig, format: Format, rank: Int = 32, seed: UInt64 = 0) throws {
        try config.validate(source: "random FLUX config")
        if format != .bf16 {
            guard rank > 0, rank % 16 == 0 else {
                throw NunchakuError.invalidArgument(context: "random FLUX \(format)", reason: "rank \(rank) must be a positive multiple of 16")
            }
            for (what, value) in [("width (heads × head dim)", config.innerDim), ("MLP width", config.mlpHiddenDim)] where value % 128 != 0 {
                throw NunchakuError.invalidArgument(
                    context: "random FLUX \(format)", reason: "\(what) \(value) must be a multiple of 128 for SVDQuant W4A4 layers")
            }
        }
        self.config = config
        self.format = format
        self.rank = rank
        self.seed = seed
        values = FluxRandomValues(seed: seed)
    }

    /// The block layout of the names: diffusers for `bf16`, Nunchaku for the quantized formats.
    public var layout: FluxCheckpointLayout { format == .bf16 ? .diffusers : .nunchaku }

    /// The 4-bit format of the W4A4 layers, nil for `bf16`.
    public var precision: SVDQuantPrecision? {
        switch format {
        case .bf16: nil
        case .int4: .int4
        case .nvfp4: .nvfp4
        }
    }

    /// The tensors that are not linear layers (the per-head RMSNorm weights), by name. Linear layers come from the
    /// checkpoint acting as the `LinearLayerFactory`.
    public var tensors: [String: Tensor] {
        var result: [String: Tensor] = [:]
        let names = (0..<config.numLayers).flatMap { index -> [String] in
            let block = FluxDoubleBlockNames(index: index, layout: layout)
            return [block.queryNorm, block.keyNorm, block.contextQueryNorm, block.contextKeyNorm]
        } + (0..<config.numSingleLayers).flatMap { index -> [String] in
            let block = FluxSingleBlockNames(index: index, layout: layout)
            return [block.queryNorm, block.keyNorm]
        }
        for name in names {
            result[name] = values.uniform(name, shape: [config.attentionHeadDim], center: 1, halfWidth: 0.25)
        }
        return result
    }

    /// The layer `spec` describes, made from the seed and its name.
    func hostLinear(_ spec: LinearLayerSpec) throws -> FluxHostLinear {
        switch (spec.quantization, precision) {
        case (.none, _), (_, nil):
            let bound = 1 / Float(spec.inFeatures).squareRoot()
            return .dense(
                weight: values.uniform("\(spec.name).weight", shape: [spec.outFeatures, spec.inFeatures], center: 0, halfWidth: bound),
                bias: values.uniform("\(spec.name).bias", shape: [spec.outFeatures], center: 0, halfWidth: bound))
        case let (.w4a4(inputFollowsGELU), precision?):
            return .w4a4(try w4a4(spec, precision: precision, actUnsigned: inputFollowsGELU && precision == .int4))
        case (.awqW4A16, _?):
            return .awq(try awq(spec))
        }
    }

    private func w4a4(_ spec: LinearLayerSpec, precision: SVDQuantPrecision, actUnsigned: Bool) throws -> SVDQW4A4Weights {
        let (name, n, k) = (spec.name, spec.outFeatures, spec.inFeatures)
        let p = 1 / Float(k).squareRoot()
        var wtscale: Tensor?, wcscales: Tensor?
        let wscales: Tensor
        switch precision {
        case .int4:
            wscales = values.uniform("\(name).wscales", shape: [k / 64, n], center: p / 8, halfWidth: p / 16)
        case .nvfp4:
            wscales = values.e4m3("\(name).wscales", shape: [k / 16, n], codes: 0x38...0x3F)
            if name.hasSuffix("qkv_proj") || name.hasSuffix("qkv_proj_context") {
                wcscales = values.uniform("\(name).wcscales", shape: [n], center: p / 8, halfWidth: p / 16)
            } else {
                wtscale = Tensor([p / 8], shape: [1], dtype: .bf16)
            }
        }
        let tensors = SVDQW4A4Tensors(
            qweight: values.bytes("\(name).qweight", shape: [n, k / 2]), wscales: wscales, wtscale: wtscale,
            wcscales: wcscales, bias: values.uniform("\(name).bias", shape: [n], center: 0, halfWidth: 0.125),
            smooth: values.uniform("\(Self.smoothingLayer(name)).smooth", shape: [k], center: 1, halfWidth: 0.5),
            projDown: values.uniform("\(name).lora_down", shape: [k, rank], center: 0, halfWidth: p),
            projUp: values.uniform("\(name).lora_up", shape: [n, rank], center: 0, halfWidth: 0.25))
        return try SVDQW4A4Weights(name: name, tensors: tensors, layout: .canonical(vectorOrder: .natural), actUnsigned: actUnsigned)
    }

    /// The layer whose smoothing vector `name` uses: a single block's `mlp_fc1` shares its `qkv_proj`'s (the same
    /// input; research/nunchaku-internals.md §1.4), every other layer has its own.
    static func smoothingLayer(_ name: String) -> String {
        guard name.hasPrefix("single_transformer_blocks."), name.hasSuffix(".mlp_fc1") else { return name }
        return name.dropLast("mlp_fc1".count) + "qkv_proj"
    }

    /// An adaLN layer as Nunchaku stores it: outputs interleaved (stored channel `d·S + s` is chunk s), the +1 folded
    /// into the bias of the scale chunks.
    private func awq(_ spec: LinearLayerSpec) throws -> AWQW4A16Weights {
        let (name, n, k) = (spec.name, spec.outFeatures, spec.inFeatures)
        let p = 1 / Float(k).squareRoot()
        let wscales = values.uniform("\(name).wscales", shape: [k / 64, n], center: p / 8, halfWidth: p / 16)
        let wzeros = Tensor(wscales.floats().map { -8 * $0 }, shape: wscales.shape, dtype: .bf16)
        var bias = values.uniform("\(name).bias", shape: [n], center: 0, halfWidth: 0.125).floats()
        let chunks = n / config.innerDim
        if n % config.innerDim == 0, chunks >= 2 {
            let scaleChunks = Set(try ModulationInterleave(chunks: chunks).scaleChunks)
            for channel in 0..<n where scaleChunks.contains(channel % chunks) { bias[channel] += 1 }
        }
        return try AWQW4A16Weights(
            name: name,
            tensors: AWQW4A16Tensors(qweight: values.bytes("\(name).qweight", shape: [n, k / 2]), wscales: wscales, wzeros: wzeros,
                                     bias: Tensor(bias, shape: [n], dtype: .bf16)),
            layout: .canonical)
    }
}

extension FluxRandomCheckpoint: FluxHostLinearSource {
    func hostLinear(_ spec: LinearLayerSpec, weights: WeightReader) throws -> FluxHostLinear {
        try hostLinear(spec)
    }
}

/// As a factory the checkpoint gives the CPU model the same layers: dense layers, and the kernel-exact CPU
/// references of the quantized ones.
extension FluxRandomCheckpoint: LinearLayerFactory {
    public func makeLinear(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        switch try hostLinear(spec) {
        case let .dense(weight, bias):
            return try DenseLinear(name: spec.name, weight: weight, bias: bias, parameterDType: computeDType)
        case let .w4a4(layer):
            return SVDQW4A4Linear(weights: layer)
        case let .awq(layer):
            return AWQW4A16Linear(weights: layer)
        case .unloaded:
            return UnloadedLinear(spec)
        }
    }
}

extension FluxTransformer {
    /// The CPU model of a random-weight checkpoint (quantized layers as their kernel-exact references, which
    /// compute in bf16).
    public init(random checkpoint: FluxRandomCheckpoint, computeDType: DType = .bf16) throws {
        if checkpoint.format != .bf16, computeDType != .bf16 {
            throw NunchakuError.unsupported(
                context: "random \(checkpoint.format) FLUX",
                reason: "its kernel-exact SVDQuant layers quantize bf16 activations, not \(computeDType); compute in bf16")
        }
        try self.init(
            config: checkpoint.config, weights: checkpoint.tensors, layout: checkpoint.layout, computeDType: computeDType,
            linearFactory: checkpoint, source: "random \(checkpoint.format) FLUX (seed \(checkpoint.seed))")
    }
}
