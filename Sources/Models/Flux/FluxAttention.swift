import CPUBackend
import NunchakuCore

/// The query/key/value projections of one token stream: three linears, or one fused linear whose output is
/// `q ‖ k ‖ v` (Nunchaku's `qkv_proj`). Either way the result is three `[B, S, H, d]` tensors.
enum QKVProjection: Sendable {
    case separate(query: any LinearLayer, key: any LinearLayer, value: any LinearLayer)
    case fused(any LinearLayer)

    init(_ names: QKVNames, width: Int, loader: FluxLayerLoader) throws {
        switch names {
        case let .separate(query, key, value):
            self = .separate(
                query: try loader.projection(query, width, width), key: try loader.projection(key, width, width),
                value: try loader.projection(value, width, width))
        case let .fused(name):
            self = .fused(try loader.projection(name, width, 3 * width))
        }
    }

    /// Projects `[B, S, D]` tokens to queries, keys and values viewed as `heads` heads.
    func project(_ x: Tensor, heads: Int) throws -> (query: Tensor, key: Tensor, value: Tensor) {
        let parts: [Tensor]
        switch self {
        case let .separate(query, key, value):
            parts = [try query.applied(to: x), try key.applied(to: x), try value.applied(to: x)]
        case let .fused(layer):
            let fused = try layer.applied(to: x)
            let width = fused.shape[2] / 3
            parts = try CPUOps.splitLastDimension(fused, sizes: [width, width, width])
        }
        let (batch, tokens, width) = (x.shape[0], x.shape[1], parts[0].shape[2])
        let heads = try parts.map { try $0.reshaped([batch, tokens, heads, width / heads]) }
        return (heads[0], heads[1], heads[2])
    }
}

/// The RMSNorm weights applied per head to queries and keys (`norm_q`, `norm_k`).
struct QKNorm: Sendable {
    let query: Tensor
    let key: Tensor

    func callAsFunction(_ qkv: (query: Tensor, key: Tensor, value: Tensor)) throws -> (query: Tensor, key: Tensor, value: Tensor) {
        (try CPUOps.rmsNorm(qkv.query, weight: query, eps: 1e-6), try CPUOps.rmsNorm(qkv.key, weight: key, eps: 1e-6), qkv.value)
    }
}

enum FluxAttention {
    /// RoPE on queries and keys, then softmax attention over the whole sequence; heads merged back to `[B, S, D]`.
    static func attend(_ qkv: (query: Tensor, key: Tensor, value: Tensor), rotary: RotaryTable) throws -> Tensor {
        let query = try CPUOps.applyRotary(qkv.query, table: rotary)
        let key = try CPUOps.applyRotary(qkv.key, table: rotary)
        let output = try CPUOps.attention(query: query, key: key, value: qkv.value)
        let shape = output.shape
        return try output.reshaped([shape[0], shape[1], shape[2] * shape[3]])
    }

    /// Stacks two `(q, k, v)` triples along the token axis, `first` before `second`.
    static func concat(
        _ first: (query: Tensor, key: Tensor, value: Tensor), _ second: (query: Tensor, key: Tensor, value: Tensor)
    ) throws -> (query: Tensor, key: Tensor, value: Tensor) {
        (try CPUOps.concatTokens([first.query, second.query]), try CPUOps.concatTokens([first.key, second.key]),
         try CPUOps.concatTokens([first.value, second.value]))
    }
}
