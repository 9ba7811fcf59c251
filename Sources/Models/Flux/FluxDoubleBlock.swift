import CPUBackend
import NunchakuCore

/// A double-stream block (`FluxTransformerBlock`): image and text tokens keep their own weights but attend jointly
/// over `[text; image]`.
struct FluxDoubleBlock: Sendable {
    let imageModulation, contextModulation: FluxModulation
    let imageQKV, contextQKV: QKVProjection
    let imageNorm, contextNorm: QKNorm
    let imageOut, contextOut: any LinearLayer
    let imageMLP, contextMLP: FluxFeedForward
    let heads: Int

    init(index: Int, config: FluxConfig, layout: FluxCheckpointLayout, loader: FluxLayerLoader) throws {
        let names = FluxDoubleBlockNames(index: index, layout: layout)
        let (width, hidden, headDim) = (config.innerDim, config.mlpHiddenDim, config.attentionHeadDim)
        imageModulation = try FluxModulation(name: names.imageModulation, width: width, chunkCount: 6, layout: names.modulation, loader: loader)
        contextModulation = try FluxModulation(name: names.contextModulation, width: width, chunkCount: 6, layout: names.modulation, loader: loader)
        imageQKV = try QKVProjection(names.imageQKV, width: width, loader: loader)
        contextQKV = try QKVProjection(names.contextQKV, width: width, loader: loader)
        imageNorm = QKNorm(query: loader.normWeight(names.queryNorm, headDim), key: loader.normWeight(names.keyNorm, headDim))
        contextNorm = QKNorm(
            query: loader.normWeight(names.contextQueryNorm, headDim), key: loader.normWeight(names.contextKeyNorm, headDim))
        imageOut = try loader.projection(names.imageOut, width, width)
        contextOut = try loader.projection(names.contextOut, width, width)
        imageMLP = FluxFeedForward(
            input: try loader.projection(names.imageMLPIn, width, hidden),
            output: try loader.projection(names.imageMLPOut, hidden, width, inputFollowsGELU: true))
        contextMLP = FluxFeedForward(
            input: try loader.projection(names.contextMLPIn, width, hidden),
            output: try loader.projection(names.contextMLPOut, hidden, width, inputFollowsGELU: true))
        heads = config.numAttentionHeads
    }

    /// One block on image tokens `[B, N, D]` and text tokens `[B, T, D]`; `conditioning` is `SiLU(temb)` `[B, D]`.
    func callAsFunction(image: Tensor, context: Tensor, conditioning: Tensor, rotary: RotaryTable) throws -> (image: Tensor, context: Tensor) {
        // Chunks: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
        let m = try imageModulation.chunks(conditioning)
        let mc = try contextModulation.chunks(conditioning)
        let normImage = try imageModulation.modulate(CPUOps.layerNorm(image), shift: m[0], scale: m[1])
        let normContext = try contextModulation.modulate(CPUOps.layerNorm(context), shift: mc[0], scale: mc[1])

        let imageHeads = try imageNorm(imageQKV.project(normImage, heads: heads))
        let contextHeads = try contextNorm(contextQKV.project(normContext, heads: heads))
        let joint = try FluxAttention.attend(FluxAttention.concat(contextHeads, imageHeads), rotary: rotary)
        let parts = try CPUOps.splitTokens(joint, sizes: [context.shape[1], image.shape[1]])

        var image = try CPUOps.gatedAdd(image, gate: m[2], imageOut.applied(to: parts[1]))
        let imageMLPInput = try imageModulation.modulate(CPUOps.layerNorm(image), shift: m[3], scale: m[4])
        image = try CPUOps.gatedAdd(image, gate: m[5], imageMLP(imageMLPInput))

        var context = try CPUOps.gatedAdd(context, gate: mc[2], contextOut.applied(to: parts[0]))
        let contextMLPInput = try contextModulation.modulate(CPUOps.layerNorm(context), shift: mc[3], scale: mc[4])
        context = try CPUOps.gatedAdd(context, gate: mc[5], contextMLP(contextMLPInput))
        return (image, context)
    }
}
