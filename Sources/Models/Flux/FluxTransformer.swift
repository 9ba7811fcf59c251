import CPUBackend
import NunchakuCore

/// The FLUX.1 transformer (`FluxTransformer2DModel`) on the CPU: embedders, double-stream blocks over separate
/// image/text weights, single-stream blocks over the joint sequence, the final adaptive norm and projection.
///
/// Computes in f32 (the exact parity path) or bf16 (every op output rounded to bf16, like a bf16 GPU run).
/// Linear layers come from a `LinearLayerFactory`, so quantized layers slot in without changes here.
public struct FluxTransformer: Sendable {
    public let config: FluxConfig
    /// The activation dtype: f32 or bf16.
    public let computeDType: DType

    let imageEmbedder: any LinearLayer
    let contextEmbedder: any LinearLayer
    let timeTextEmbedding: FluxTimeTextEmbedding
    let doubleBlocks: [FluxDoubleBlock]
    let singleBlocks: [FluxSingleBlock]
    /// `norm_out.linear`; chunks are (scale, shift), in that order.
    let outputModulation: FluxModulation
    let outputProjection: any LinearLayer
    /// The LoRAs applied to this model (none at load): add, re-weight and remove them at run time
    /// (docs/lora.md). The layers are shared by copies of the model value.
    public let loras: LoRAStack

    /// Builds the model from `weights`, strictly: a block count that differs from the config is an error naming the
    /// blocks, and every missing, unexpected, mis-shaped or unusable tensor is listed in one `WeightLoadingError`.
    /// - Parameters:
    ///   - layout: how the blocks' linears are named and shaped (diffusers, or Nunchaku's fused layout).
    ///   - computeDType: `.f32` or `.bf16`; parameters are rounded to it.
    ///   - linearFactory: builds every linear layer (default: plain dense layers).
    ///   - source: names the checkpoint in errors.
    public init(
        config: FluxConfig, weights: any TensorProvider, layout: FluxCheckpointLayout = .diffusers,
        computeDType: DType = .f32, linearFactory: any LinearLayerFactory = DenseLinearFactory(), source: String = "weights"
    ) throws {
        try config.validate(source: source)
        guard computeDType == .f32 || computeDType == .bf16 else {
            throw NunchakuError.unsupported(context: "FluxTransformer", reason: "compute dtype \(computeDType); use f32 or bf16")
        }
        try FluxBlockInventory.check(weights.tensorNames, config: config, source: source)
        let reader = WeightReader(weights, source: source)
        let adaptable = AdaptableLinearFactory(wrapping: linearFactory)
        let loader = FluxLayerLoader(factory: adaptable, layout: layout, computeDType: computeDType, weights: reader)
        let width = config.innerDim
        self.config = config
        self.computeDType = computeDType
        imageEmbedder = try loader.linear(FluxTopLevelNames.imageEmbedder, config.inChannels, width)
        contextEmbedder = try loader.linear(FluxTopLevelNames.contextEmbedder, config.jointAttentionDim, width)
        timeTextEmbedding = try FluxTimeTextEmbedding(config: config, loader: loader)
        doubleBlocks = try (0..<config.numLayers).map { try FluxDoubleBlock(index: $0, config: config, layout: layout, loader: loader) }
        singleBlocks = try (0..<config.numSingleLayers).map { try FluxSingleBlock(index: $0, config: config, layout: layout, loader: loader) }
        outputModulation = try FluxModulation(
            name: FluxTopLevelNames.outputModulation, width: width, chunkCount: 2, layout: .diffusers, loader: loader)
        outputProjection = try loader.linear(FluxTopLevelNames.outputProjection, width, config.outputFeatures)
        try reader.finish()
        loras = LoRAStack(targets: CPULoRATargets(
            map: FluxLoRALayerMap(config: config, layout: layout, fuseSeparateQKV: false, interleavedModulation: true),
            layers: adaptable.madeLayers))
    }

    /// One denoising evaluation, with diffusers' argument names and shapes:
    /// - Parameters:
    ///   - hiddenStates: packed latents `[B, N, in_channels]`.
    ///   - encoderHiddenStates: T5 states `[B, T, joint_attention_dim]`.
    ///   - pooledProjections: CLIP pooled embedding `[B, pooled_projection_dim]`.
    ///   - timestep: `[B]`, σ in [0, 1] (scaled by 1000 inside, as diffusers does).
    ///   - guidance: `[B]` guidance scale; required exactly when `config.guidanceEmbeds`.
    ///   - imgIds: `[N, 3]` image position ids; `txtIds`: `[T, 3]` text position ids.
    /// - Returns: `sample` `[B, N, patch²·out_channels]` in the compute dtype.
    /// Inputs may be in any float dtype; they are rounded to the compute dtype first.
    public func forward(
        hiddenStates: Tensor, encoderHiddenStates: Tensor, pooledProjections: Tensor, timestep: Tensor,
        guidance: Tensor? = nil, imgIds: Tensor, txtIds: Tensor
    ) throws -> Tensor {
        let inputs = try FluxInputs(
            config: config, dtype: computeDType, hiddenStates: hiddenStates, encoderHiddenStates: encoderHiddenStates,
            pooledProjections: pooledProjections, timestep: timestep, guidance: guidance, imgIds: imgIds, txtIds: txtIds)

        var image = try imageEmbedder.applied(to: inputs.hiddenStates)
        let temb = try timeTextEmbedding(timestep: inputs.scaledTimestep, guidance: inputs.scaledGuidance, pooled: inputs.pooledProjections)
        let conditioning = try CPUOps.silu(temb)
        var context = try contextEmbedder.applied(to: inputs.encoderHiddenStates)
        let rotary = try RotaryTable.flux(positionIDs: inputs.positionIDs, axesDims: config.axesDimsRope, theta: 10000)

        for block in doubleBlocks {
            (image, context) = try block(image: image, context: context, conditioning: conditioning, rotary: rotary)
        }
        var joint = try CPUOps.concatTokens([context, image])
        for block in singleBlocks {
            joint = try block(joint, conditioning: conditioning, rotary: rotary)
        }
        image = try CPUOps.splitTokens(joint, sizes: [context.shape[1], image.shape[1]])[1]

        let m = try outputModulation.chunks(conditioning)   // scale, shift
        let normalized = try outputModulation.modulate(CPUOps.layerNorm(image), shift: m[1], scale: m[0])
        return try outputProjection.applied(to: normalized)
    }
}
