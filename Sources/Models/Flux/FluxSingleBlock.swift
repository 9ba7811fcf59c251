import CPUBackend
import NunchakuCore

/// A single-stream block (`FluxSingleTransformerBlock`) over the joint `[text; image]` sequence: attention and MLP
/// run in parallel on the same normalized input and share one output projection.
struct FluxSingleBlock: Sendable {
    /// The block's output projection: diffusers' `proj_out` over `[attention ‖ mlp]`, or Nunchaku's split
    /// `out_proj(attention) + mlp_fc2(mlp)` (the same linear map, cut along its input columns).
    enum OutputProjection: Sendable {
        case joint(any LinearLayer)
        case split(attention: any LinearLayer, mlp: any LinearLayer)

        func callAsFunction(attention: Tensor, mlp: Tensor) throws -> Tensor {
            switch self {
            case let .joint(layer):
                return try layer.applied(to: CPUOps.concatLastDimension([attention, mlp]))
            case let .split(attentionLayer, mlpLayer):
                return try CPUOps.add(attentionLayer.applied(to: attention), mlpLayer.applied(to: mlp))
            }
        }
    }

    let modulation: FluxModulation
    let qkv: QKVProjection
    let norm: QKNorm
    let mlpIn: any LinearLayer
    let output: OutputProjection
    let heads: Int

    init(index: Int, config: FluxConfig, layout: FluxCheckpointLayout, loader: FluxLayerLoader) throws {
        let names = FluxSingleBlockNames(index: index, layout: layout)
        let (width, hidden, headDim) = (config.innerDim, config.mlpHiddenDim, config.attentionHeadDim)
        modulation = try FluxModulation(name: names.modulationName, width: width, chunkCount: 3, layout: names.modulation, loader: loader)
        qkv = try QKVProjection(names.qkv, width: width, loader: loader)
        norm = QKNorm(query: loader.normWeight(names.queryNorm, headDim), key: loader.normWeight(names.keyNorm, headDim))
        mlpIn = try loader.projection(names.mlpIn, width, hidden)
        switch names.output {
        case let .joint(name):
            output = .joint(try loader.projection(name, width + hidden, width))
        case let .split(attention, mlp):
            output = .split(
                attention: try loader.projection(attention, width, width),
                mlp: try loader.projection(mlp, hidden, width, inputFollowsGELU: true))
        }
        heads = config.numAttentionHeads
    }

    /// One block on the joint tokens `[B, T+N, D]`; `conditioning` is `SiLU(temb)` `[B, D]`.
    func callAsFunction(_ tokens: Tensor, conditioning: Tensor, rotary: RotaryTable) throws -> Tensor {
        let m = try modulation.chunks(conditioning)   // shift, scale, gate
        let normalized = try modulation.modulate(CPUOps.layerNorm(tokens), shift: m[0], scale: m[1])
        let mlp = try CPUOps.geluTanh(mlpIn.applied(to: normalized))
        let attention = try FluxAttention.attend(norm(qkv.project(normalized, heads: heads)), rotary: rotary)
        return try CPUOps.gatedAdd(tokens, gate: m[2], output(attention: attention, mlp: mlp))
    }
}
