import CUDABackend
import NunchakuCore

/// A double-stream block on the GPU (`FluxDoubleBlock` is the CPU reference): image and text tokens keep their own
/// weights and attend jointly over `[text; image]`. Updates both residual streams in place.
struct FluxCUDADoubleBlock: Sendable {
    let imageModulation, contextModulation: FluxCUDAModulation
    let imageQKV, contextQKV: FluxCUDAQKV
    let imageOut, contextOut: FluxCUDALinear
    let imageMLP, contextMLP: FluxCUDAFeedForward
    /// `[contextOut, imageOut]` reading the fp8 attention's codes, when both are fast W4A4 layers that can.
    let outputCodes: FluxCUDAAttentionCodes?

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
        outputCodes = try FluxCUDAAttentionCodes(layers: [contextOut, imageOut], heads: heads)
    }

    /// One block on image tokens `[B, N, D]` and text tokens `[B, T, D]` (both updated in place); `conditioning` is
    /// `SiLU(temb)` `[B, D]`. The two token streams meet only in the joint attention: before and after it, the text
    /// tokens' work runs on the side stream beside the image tokens' (`FluxCUDAOps.concurrently`).
    func callAsFunction(image: DeviceTensor, context: DeviceTensor, conditioning: DeviceTensor, rotary: FluxCUDARotary,
                        attention precision: AttentionPrecision, _ ops: FluxCUDAOps) throws {
        // Chunks: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
        let m = try imageModulation.table(conditioning, ops)
        let mc = try contextModulation.table(conditioning, ops)
        let attended = try jointAttention(image: image, context: context, m: m, mc: mc, rotary: rotary, precision: precision, ops)
        let gates = try ops.preparedGates([(m.chunk(2), [imageOut]), (m.chunk(5), [imageMLP.output]), (mc.chunk(2), [contextOut]),
                                           (mc.chunk(5), [contextMLP.output])])
        try ops.concurrently(
            side: { ops in
                try ops.linearGatedAdd(contextOut, attended.context, gate: gates[2], into: context)
                try contextMLP.gatedAdd(try ops.layerNorm(context, mc.adaLN(shift: 3, scale: 4), for: contextMLP.input), gate: gates[3],
                                        into: context, ops)
            },
            main: { ops in
                try ops.linearGatedAdd(imageOut, attended.image, gate: gates[0], into: image)
                try imageMLP.gatedAdd(try ops.layerNorm(image, m.adaLN(shift: 3, scale: 4), for: imageMLP.input), gate: gates[1], into: image, ops)
            })
    }

    /// The joint attention over `[text; image]` (`[B, T + N, D]`), as the out-projections' inputs: the text and the
    /// image rows, 16-bit, or for a batch of one with fp8 attention the codes the attention wrote for the fast
    /// out-projections (`outputCodes`). The text tokens' LayerNorm and QKV projection run on the side stream beside
    /// the image tokens'. The text projection, made on the side stream and read by the attention, is dropped when this
    /// returns, after the side stream was made to wait for the attention, so its free follows that read; the block's
    /// next `concurrently` joins the free back.
    private func jointAttention(
        image: DeviceTensor, context: DeviceTensor, m: FluxCUDAModulationTable, mc: FluxCUDAModulationTable,
        rotary: FluxCUDARotary, precision: AttentionPrecision, _ ops: FluxCUDAOps
    ) throws -> (context: W4A4FastInput, image: W4A4FastInput) {
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
        let textTokens = context.shape[1]
        let successors = [FluxCUDAAttentionSuccessor(layer: contextOut, stream: ops.sideWorkStream),
                          FluxCUDAAttentionSuccessor(layer: imageOut, stream: ops.context.currentStream)]
        if let codes = outputCodes, image.shape[0] == 1, codes.isUsable(precision) {
            let joint = try FluxCUDAAttention.attend(heads, codes: codes, splitToken: textTokens, successors: successors, ops)
            try ops.orderSideStreamAfterCurrent()
            let rows = try joint.codes.reshaped(Array(joint.codes.shape.dropFirst()))
            func part(_ range: Range<Int>) throws -> W4A4FastInput {
                .quantized((codes: try rows.rows(range), scales: try joint.scales.rows(range)))
            }
            return (try part(0 ..< textTokens), try part(textTokens ..< rows.shape[0]))
        }
        let joint = try FluxCUDAAttention.attend(heads, precision: precision, successors: successors, ops)
        try ops.orderSideStreamAfterCurrent()
        let parts = try ops.splitTokens(joint, sizes: [textTokens, image.shape[1]])
        return (.values(parts[0]), .values(parts[1]))
    }
}
