import CUDABackend
import NunchakuCore

/// A double-stream block on the GPU (`FluxDoubleBlock` is the CPU reference): image and text tokens keep their own
/// weights and attend jointly over `[text; image]`. Updates both residual streams in place.
struct FluxCUDADoubleBlock: Sendable {
    let imageModulation, contextModulation: FluxCUDAModulation
    let imageQKV, contextQKV: FluxCUDAQKV
    let imageOut, contextOut: FluxCUDALinear
    let imageMLP, contextMLP: FluxCUDAFeedForward

    init(index: Int, config: FluxConfig, loader: FluxCUDALayerLoader) throws {
        let names = FluxDoubleBlockNames(index: index, layout: loader.layout)
        let (width, hidden, headDim, heads) = (config.innerDim, config.mlpHiddenDim, config.attentionHeadDim, config.numAttentionHeads)
        imageModulation = try FluxCUDAModulation(
            name: names.imageModulation, width: width, chunkCount: 6, layout: names.modulation, loader: loader)
        contextModulation = try FluxCUDAModulation(
            name: names.contextModulation, width: width, chunkCount: 6, layout: names.modulation, loader: loader)
        imageQKV = FluxCUDAQKV(
            projection: try loader.qkv(names.imageQKV, width: width), queryNorm: try loader.normWeight(names.queryNorm, headDim),
            keyNorm: try loader.normWeight(names.keyNorm, headDim), heads: heads)
        contextQKV = FluxCUDAQKV(
            projection: try loader.qkv(names.contextQKV, width: width),
            queryNorm: try loader.normWeight(names.contextQueryNorm, headDim),
            keyNorm: try loader.normWeight(names.contextKeyNorm, headDim), heads: heads)
        imageOut = try loader.projection(names.imageOut, width, width)
        contextOut = try loader.projection(names.contextOut, width, width)
        imageMLP = FluxCUDAFeedForward(
            input: try loader.projection(names.imageMLPIn, width, hidden),
            output: try loader.projection(names.imageMLPOut, hidden, width, inputFollowsGELU: true))
        contextMLP = FluxCUDAFeedForward(
            input: try loader.projection(names.contextMLPIn, width, hidden),
            output: try loader.projection(names.contextMLPOut, hidden, width, inputFollowsGELU: true))
    }

    /// One block on image tokens `[B, N, D]` and text tokens `[B, T, D]` (both updated in place); `conditioning` is
    /// `SiLU(temb)` `[B, D]`. The two token streams meet only in the joint attention: before and after it, the text
    /// tokens' work runs on the side stream beside the image tokens' (`FluxCUDAOps.concurrently`).
    func callAsFunction(image: DeviceTensor, context: DeviceTensor, conditioning: DeviceTensor, rotary: FluxCUDARotary,
                        attention precision: AttentionPrecision, _ ops: FluxCUDAOps) throws {
        // Chunks: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
        let m = try imageModulation.table(conditioning, ops)
        let mc = try contextModulation.table(conditioning, ops)
        let joint = try jointAttention(image: image, context: context, m: m, mc: mc, rotary: rotary, precision: precision, ops)
        let attended = try ops.splitTokens(joint, sizes: [context.shape[1], image.shape[1]])
        let gates = try ops.preparedGates([(m.chunk(2), [imageOut]), (m.chunk(5), [imageMLP.output]), (mc.chunk(2), [contextOut]),
                                           (mc.chunk(5), [contextMLP.output])])
        try ops.concurrently(
            side: { ops in
                try ops.linearGatedAdd(contextOut, .values(attended[0]), gate: gates[2], into: context)
                try contextMLP.gatedAdd(try ops.layerNorm(context, mc.adaLN(shift: 3, scale: 4), for: contextMLP.input), gate: gates[3],
                                        into: context, ops)
            },
            main: { ops in
                try ops.linearGatedAdd(imageOut, .values(attended[1]), gate: gates[0], into: image)
                try imageMLP.gatedAdd(try ops.layerNorm(image, m.adaLN(shift: 3, scale: 4), for: imageMLP.input), gate: gates[1], into: image, ops)
            })
    }

    /// The joint attention over `[text; image]` (`[B, T + N, D]`): the text tokens' LayerNorm and QKV projection run
    /// on the side stream beside the image tokens'. The text projection, made on the side stream and read by the
    /// attention, is dropped when this returns, after the side stream was made to wait for the attention, so its
    /// free follows that read; the block's next `concurrently` joins the free back.
    private func jointAttention(
        image: DeviceTensor, context: DeviceTensor, m: FluxCUDAModulationTable, mc: FluxCUDAModulationTable,
        rotary: FluxCUDARotary, precision: AttentionPrecision, _ ops: FluxCUDAOps
    ) throws -> DeviceTensor {
        let heads = try imageQKV.jointHeads(batch: image.shape[0], tokens: context.shape[1] + image.shape[1], like: image, ops)
        try ops.concurrently(
            side: { ops in
                try contextQKV.write(try ops.layerNorm(context, mc.adaLN(shift: 0, scale: 1), for: contextQKV.projection), into: heads,
                                     tokenOffset: 0, rotary: rotary, ops)
            },
            main: { ops in
                try imageQKV.write(try ops.layerNorm(image, m.adaLN(shift: 0, scale: 1), for: imageQKV.projection), into: heads,
                                   tokenOffset: context.shape[1], rotary: rotary, ops)
            })
        let joint = try FluxCUDAAttention.attend(heads, precision: precision, ops)
        try ops.orderSideStreamAfterCurrent()
        return joint
    }
}
