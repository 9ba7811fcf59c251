import CPUBackend
import CUDABackend
import NunchakuCore
import SafeTensors
import SVDQuant

/// The FLUX.1 transformer on a CUDA GPU, with bf16 activations: the same blocks, names and numerics as the CPU
/// `FluxTransformer` (its reference), each op a GPU kernel.
///
/// Weights are uploaded once at construction. Dense layers are bf16 and run on `CUDAGEMM` (cuBLASLt or our kernel);
/// SVDQuant checkpoints keep their W4A4 block projections and AWQ W4A16 adaLN layers 4-bit on the GPU and run them
/// with the W4A4 / AWQ kernels (NVFP4 through its int8-decoded path where the GPU has no FP4 tensor cores).
/// Activations are allocated from the context's memory pool and released as soon as they are consumed, so the peak
/// is the weights plus about one block's intermediates; attention never materializes the `S×S` scores.
public struct FluxCUDATransformer: Sendable {
    public let config: FluxConfig
    public let context: CUDAContext
    /// How the INT4 W4A4 layers run (`.exact` unless asked for).
    public let numerics: W4A4Numerics
    /// What the fast W4A4 layers share (nil for `.exact`): its `prefetchesWeights` switches the weight prefetch.
    public let fastEngine: CUDAW4A4FastEngine?
    /// The operand format of attention (`.bf16` unless asked for; `.fp8` needs an sm_90a GPU).
    public private(set) var attention: AttentionPrecision
    let gemm: CUDAGEMM
    /// The second stream the double blocks' text-token work runs on (fast numerics; nil: one stream).
    let sideStream: FluxCUDASideStream?
    /// Whether the double blocks run their text tokens' work on a second stream beside the image tokens' work (fast
    /// numerics only; on by default; `FluxCUDAOps.concurrently`). The results are bit for bit the same either way when both streams' GEMMs pick
    /// the same cuBLASLt algorithms (`CUDAW4A4FastEngine.tunesGEMMs` off makes that certain).
    public var overlapsBranches = true
    let imageEmbedder: FluxCUDALinear
    let contextEmbedder: FluxCUDALinear
    let timeTextEmbedding: FluxCUDATimeTextEmbedding
    let doubleBlocks: [FluxCUDADoubleBlock]
    let singleBlocks: [FluxCUDASingleBlock]
    /// `norm_out.linear`; chunks are (scale, shift), in that order.
    let outputModulation: FluxCUDAModulation
    let outputProjection: FluxCUDALinear
    /// The LoRAs applied to this model (none at load): add, re-weight and remove them at run time (docs/lora.md).
    public let loras: LoRAStack

    /// Builds the model from checkpoint tensors, strictly (like the CPU model: a block count that differs from the
    /// config, or any missing, unexpected, mis-shaped or unusable tensor, is an error naming them).
    /// - Parameter linearFactory: how quantized layers are stored: `DenseLinearFactory` for unquantized checkpoints,
    ///   `SVDQuantLinearFactory` in kernel-exact mode for SVDQuant ones.
    /// - Parameter numerics: `.fast` runs W4A4 layers (INT4 and NVFP4) on the FP8 path (sm_90+).
    /// - Parameter attention: `.fp8` runs attention on e4m3 operands (sm_90a; `NunchakuError.unsupported` elsewhere).
    public init(
        config: FluxConfig, weights: any TensorProvider, layout: FluxCheckpointLayout = .diffusers,
        linearFactory: any LinearLayerFactory = DenseLinearFactory(), context: CUDAContext, source: String = "weights",
        numerics: W4A4Numerics = .exact, attention: AttentionPrecision = .bf16
    ) throws {
        try self.init(config: config, weights: weights, layout: layout, linears: FluxCheckpointLinears(factory: linearFactory),
                      context: context, source: source, numerics: numerics, attention: attention)
    }

    /// Loads the checkpoint in `files`, choosing its layers by its format as `FluxTransformer(files:)` does:
    /// SVDQuant checkpoints (any container `SVDQuantCheckpoint` opens) through `SVDQuantLinearFactory` in
    /// kernel-exact mode, unquantized ones (diffusers or Nunchaku block names) as dense layers.
    /// - Parameters numerics, attention: as in `init(config:weights:…)`.
    public init(files: FluxModelFiles, context: CUDAContext, numerics: W4A4Numerics = .exact, attention: AttentionPrecision = .bf16) throws {
        let source = files.source
        switch try files.weightSource() {
        case .svdquant(let checkpoint):
            try self.init(config: files.config, weights: SVDQuantModelTensors(checkpoint), layout: .nunchaku,
                          linearFactory: SVDQuantLinearFactory(checkpoint: checkpoint), context: context, source: source,
                          numerics: numerics, attention: attention)
        case .dense(let layout):
            try self.init(config: files.config, weights: files.weights, layout: layout, context: context, source: source,
                          numerics: numerics, attention: attention)
        }
    }

    /// The model of a random-weight checkpoint (layers generated one at a time, uploaded, and dropped on the host).
    public init(random checkpoint: FluxRandomCheckpoint, context: CUDAContext, numerics: W4A4Numerics = .exact,
                attention: AttentionPrecision = .bf16) throws {
        try self.init(config: checkpoint.config, weights: checkpoint.tensors, layout: checkpoint.layout, linears: checkpoint,
                      context: context, source: "random \(checkpoint.format) FLUX (seed \(checkpoint.seed))", numerics: numerics,
                      attention: attention)
    }

    init(config: FluxConfig, weights: any TensorProvider, layout: FluxCheckpointLayout, linears: any FluxHostLinearSource,
         context: CUDAContext, source: String, numerics: W4A4Numerics, attention: AttentionPrecision) throws {
        try config.validate(source: source)
        try Self.checkKernelLimits(config, source: source)
        try Self.checkAttention(attention, config, context: context, source: source)
        try FluxBlockInventory.check(weights.tensorNames, config: config, source: source)
        let reader = WeightReader(weights, source: source)
        var loader = FluxCUDALayerLoader(context: context, layout: layout, source: linears, weights: reader)
        if numerics == .fast { loader.fastEngine = try CUDAW4A4FastEngine(context: context) }
        let width = config.innerDim
        self.config = config
        self.context = context
        self.numerics = numerics
        fastEngine = loader.fastEngine
        self.attention = attention
        gemm = CUDAGEMM(context: context)
        // Before the layers: the fast engine's lane for the side stream reserves its weight slots as they are made.
        sideStream = numerics == .fast ? try FluxCUDASideStream(context: context, fastEngine: loader.fastEngine) : nil
        imageEmbedder = try loader.linear(FluxTopLevelNames.imageEmbedder, config.inChannels, width)
        contextEmbedder = try loader.linear(FluxTopLevelNames.contextEmbedder, config.jointAttentionDim, width)
        timeTextEmbedding = try FluxCUDATimeTextEmbedding(config: config, loader: loader)
        doubleBlocks = try (0..<config.numLayers).map { try FluxCUDADoubleBlock(index: $0, config: config, loader: loader) }
        singleBlocks = try (0..<config.numSingleLayers).map { try FluxCUDASingleBlock(index: $0, config: config, loader: loader) }
        outputModulation = try FluxCUDAModulation(
            name: FluxTopLevelNames.outputModulation, width: width, chunkCount: 2, layout: .diffusers, loader: loader)
        outputProjection = try loader.linear(FluxTopLevelNames.outputProjection, width, config.outputFeatures)
        try reader.finish()
        loras = LoRAStack(targets: CUDALoRATargets(
            map: FluxLoRALayerMap(config: config, layout: layout, fuseSeparateQKV: true, interleavedModulation: false),
            layers: loader.adaptable.all))
    }

    /// The same model (weights shared) with attention at `precision`.
    /// - Throws: `NunchakuError.unsupported` for `.fp8` off sm_90a or at a head dimension other than 128.
    public func withAttention(_ precision: AttentionPrecision) throws -> FluxCUDATransformer {
        try Self.checkAttention(precision, config, context: context, source: "FLUX transformer")
        var copy = self
        copy.attention = precision
        return copy
    }

    /// Refuses fp8 attention where its kernel cannot run (naming the GPU's kernel target or the head dimension).
    static func checkAttention(_ precision: AttentionPrecision, _ config: FluxConfig, context: CUDAContext, source: String) throws {
        guard precision == .fp8 else { return }
        guard config.attentionHeadDim == AttentionFP8Launch.headDim else {
            throw NunchakuError.unsupported(
                context: source, reason: "fp8 attention needs attention_head_dim \(AttentionFP8Launch.headDim), not \(config.attentionHeadDim)")
        }
        try context.checkFP8AttentionAvailable()
    }

    /// The GEMM implementation dense layers use (cuBLASLt when it loads).
    public var denseGEMM: GEMMImplementation { gemm.defaultImplementation }

    /// How many single blocks smooth and quantize their input once for `qkv_proj` and `mlp_fc1` (fast numerics, both
    /// layers with one smoothing vector: `CUDAW4A4FastSharedInput`); the others run a pass per layer.
    public var singleBlocksSharingInput: Int { singleBlocks.filter { $0.sharedInput != nil }.count }

    /// One denoising evaluation on uploaded inputs: `sample` `[B, N, patch²·out_channels]`, bf16, on the GPU. Work is
    /// queued on the context's current stream (its default stream outside `CUDAContext.withStream`), with the double
    /// blocks' text-token work on a second stream joined back into it; downloading the result waits for it.
    public func forward(_ inputs: FluxCUDAInputs) throws -> DeviceTensor {
        // Pinned, so every op runs here whichever stream its input was allocated on (the side stream's included).
        try context.withStream(context.currentStream) { try forwardOnCurrentStream(inputs) }
    }

    private func forwardOnCurrentStream(_ inputs: FluxCUDAInputs) throws -> DeviceTensor {
        let ops = try FluxCUDAOps(context: context, gemm: gemm, batch: inputs.batch, width: config.innerDim,
                                  sideStream: overlapsBranches ? sideStream : nil)
        let image = try ops.linear(imageEmbedder, inputs.hiddenStates)
        let conditioning = try timeTextEmbedding(inputs, ops)
        try ops.apply(.silu, conditioning)
        let text = try ops.linear(contextEmbedder, inputs.encoderHiddenStates)
        for block in doubleBlocks {
            try block(image: image, context: text, conditioning: conditioning, rotary: inputs.rotary, attention: attention, ops)
        }
        let joint = try ops.concatTokens([text, image])
        for block in singleBlocks {
            try block(joint, conditioning: conditioning, rotary: inputs.rotary, attention: attention, ops)
        }
        let imageOut = try ops.splitTokens(joint, sizes: [inputs.textTokens, inputs.imageTokens])[1]
        let m = try outputModulation.table(conditioning, ops)   // scale, shift
        return try ops.linear(outputProjection, try ops.layerNorm(imageOut, m.adaLN(shift: 1, scale: 0)))
    }

    /// One forward on host arguments read by their diffusers names (see `FluxCUDAInputs`); returns `sample` (bf16).
    public func forward(inputs: any TensorProvider) throws -> Tensor {
        try forward(FluxCUDAInputs(config: config, context: context, inputs: inputs)).download()
    }

    /// Refuses configs the kernels cannot run, naming the value and the limit.
    static func checkKernelLimits(_ config: FluxConfig, source: String) throws {
        guard AttentionGeometry.headDimensions.contains(config.attentionHeadDim) else {
            throw NunchakuError.unsupported(
                context: source,
                reason: "attention_head_dim \(config.attentionHeadDim): the CUDA attention kernel supports head dimensions \(AttentionGeometry.headDimensions)")
        }
        let widths = [("in_channels", config.inChannels), ("joint_attention_dim", config.jointAttentionDim),
                      ("pooled_projection_dim", config.pooledProjectionDim), ("patch² · out_channels", config.outputFeatures),
                      ("width (heads × head dim)", config.innerDim)]
        for (name, value) in widths where value % 8 != 0 {
            throw NunchakuError.unsupported(
                context: source, reason: "\(name) \(value): the CUDA GEMM and norm kernels need multiples of 8")
        }
    }
}
