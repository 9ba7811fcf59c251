import CUDABackend
import NunchakuCore

/// A single-stream block on the GPU (`FluxSingleBlock` is the CPU reference) over the joint `[text; image]` tokens:
/// attention and MLP run on the same normalized input and share one output projection. Updates the tokens in place.
struct FluxCUDASingleBlock: Sendable {
    /// diffusers' `proj_out` over `[attention ‖ mlp]`, or Nunchaku's `out_proj(attention) + mlp_fc2(mlp)`.
    enum OutputProjection: Sendable {
        case joint(FluxCUDALinear)
        case split(attention: FluxCUDALinear, mlp: FluxCUDALinear)

        /// The layers of the projection.
        var layers: [FluxCUDALinear] {
            switch self {
            case let .joint(layer): [layer]
            case let .split(attention, mlp): [attention, mlp]
            }
        }

        /// `tokens ← tokens + gate·projection(attention, mlp)`. Where the layers fold the gated residual into their
        /// GEMM epilogues (fast W4A4, batch of one), each part is added onto the tokens; otherwise the parts' sum is
        /// formed first and added by one gated add.
        /// `attention` is 16-bit rows, or (split projection) the codes the fp8 attention wrote for its layer.
        func gatedAdd(attention: W4A4FastInput, mlp: DeviceTensor, gate: ModulationChunk, into tokens: DeviceTensor,
                      _ ops: FluxCUDAOps) throws {
            switch self {
            case let .joint(layer):
                guard case let .values(attention) = attention else {
                    throw NunchakuError.invalidArgument(context: layer.name, reason: "the joint output projection reads 16-bit attention rows")
                }
                try ops.linearGatedAdd(layer, .values(try ops.concatLastDimension([attention, mlp])), gate: gate, into: tokens)
            case let .split(attentionLayer, mlpLayer):
                if try attentionLayer.gatedAccumulate(attention, gate: gate, into: tokens) {
                    try ops.linearGatedAdd(mlpLayer, .values(mlp), gate: gate, into: tokens)
                    return
                }
                let sum = try ops.linear(attentionLayer, attention)
                if try !mlpLayer.accumulate(.values(mlp), into: sum) { try ops.add(try ops.linear(mlpLayer, mlp), into: sum) }
                try ops.gatedAdd(sum, gate: gate, into: tokens)
            }
        }
    }

    let modulation: FluxCUDAModulation
    let qkv: FluxCUDAQKV
    let mlpIn: FluxCUDALinear
    /// `mlpIn` and `qkv`'s projection with one activation pass (fast W4A4 layers with the same smoothing).
    let sharedInput: FluxCUDASharedInput?
    let output: OutputProjection
    /// The split projection's attention layer reading the fp8 attention's codes, when it is a fast W4A4 layer that can.
    let outputCodes: FluxCUDAAttentionCodes?

    init(index: Int, config: FluxConfig, loader: FluxCUDALayerLoader) throws {
        let names = FluxSingleBlockNames(index: index, layout: loader.layout)
        let (width, hidden, headDim) = (config.innerDim, config.mlpHiddenDim, config.attentionHeadDim)
        modulation = try FluxCUDAModulation(
            name: names.modulationName, width: width, chunkCount: 3, layout: names.modulation, loader: loader)
        let inputs = try loader.singleBlockInputs(qkv: names.qkv, mlpIn: names.mlpIn, width: width, hidden: hidden)
        qkv = FluxCUDAQKV(
            projection: inputs.qkv, queryNorm: try loader.normWeight(names.queryNorm, headDim),
            keyNorm: try loader.normWeight(names.keyNorm, headDim), heads: config.numAttentionHeads)
        mlpIn = inputs.mlpIn
        sharedInput = inputs.shared
        switch names.output {
        case let .joint(name):
            output = .joint(try loader.projection(name, width + hidden, width))
        case let .split(attention, mlp):
            output = .split(
                attention: try loader.projection(attention, width, width),
                mlp: try loader.projection(mlp, hidden, width, inputFollowsGELU: true))
        }
        if case let .split(attention, _) = output {
            outputCodes = try FluxCUDAAttentionCodes(layers: [attention], heads: config.numAttentionHeads)
        } else {
            outputCodes = nil
        }
    }

    /// One block on the joint tokens `[B, T+N, D]` (updated in place); `conditioning` is `SiLU(temb)` `[B, D]`.
    func callAsFunction(_ tokens: DeviceTensor, conditioning: DeviceTensor, rotary: FluxCUDARotary, attention precision: AttentionPrecision,
                        _ ops: FluxCUDAOps) throws {
        let m = try modulation.table(conditioning, ops)   // shift, scale, gate
        try update(tokens, m, rotary, precision, ops)
    }

    /// `tokens ← tokens + gate·output(attention(x), GELU(mlp_in(x)))` for `x = LN(tokens)·scale + shift`. With the
    /// shared activation pass in use, the LayerNorm writes its codes (`FluxCUDAOps.layerNorm(_:_:quantizedFor:)`);
    /// otherwise x is 16-bit and each layer quantizes it.
    private func update(_ tokens: DeviceTensor, _ m: FluxCUDAModulationTable, _ rotary: FluxCUDARotary, _ precision: AttentionPrecision,
                        _ ops: FluxCUDAOps) throws {
        let modulation = m.adaLN(shift: 0, scale: 1)
        let heads = try qkv.jointHeads(batch: tokens.shape[0], tokens: tokens.shape[1], like: tokens, ops)
        let mlp: DeviceTensor
        if let shared = sharedInput, shared.isInUse {
            let outputs = try shared(try ops.layerNorm(tokens, modulation, quantizedFor: shared.pass.inputPass))
            mlp = outputs.mlp
            qkv.write(projection: outputs.qkv, into: heads, tokenOffset: 0, rotary: rotary)
        } else {
            let normalized = W4A4FastInput.values(try ops.layerNorm(tokens, modulation))
            mlp = try ops.linearGELU(mlpIn, normalized)
            try qkv.write(normalized, into: heads, tokenOffset: 0, rotary: rotary, ops)
        }
        let attention: W4A4FastInput
        let successors = output.layers.map { FluxCUDAAttentionSuccessor(layer: $0, stream: ops.context.currentStream) }
        if let codes = outputCodes, codes.isUsable(precision) {
            attention = .quantized(try FluxCUDAAttention.attend(heads, codes: codes, splitToken: 0, successors: successors, ops))
        } else {
            attention = .values(try FluxCUDAAttention.attend(heads, precision: precision, successors: successors, ops))
        }
        let gate = try ops.preparedGates([(m.chunk(2), output.layers)])[0]
        try output.gatedAdd(attention: attention, mlp: mlp, gate: gate, into: tokens, ops)
    }
}
