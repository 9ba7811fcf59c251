import CPUBackend
import CUDABackend
import NunchakuCore

/// Queries, keys and values of one token stream, `[B, S, H, d]` each.
struct FluxCUDAHeads {
    let query: DeviceTensor
    let key: DeviceTensor
    let value: DeviceTensor
}

/// RoPE tables on the GPU: float32 `[S, d]` cos and sin for the joint `[text; image]` sequence.
struct FluxCUDARotary: Sendable {
    let cos: DeviceTensor
    let sin: DeviceTensor

    init(_ table: RotaryTable, context: CUDAContext) throws {
        cos = try DeviceTensor(uploading: table.cosTensor, context: context)
        sin = try DeviceTensor(uploading: table.sinTensor, context: context)
    }

    init(cos: DeviceTensor, sin: DeviceTensor) {
        self.cos = cos
        self.sin = sin
    }
}

/// The fused `q ‖ k ‖ v` projection of one stream with its per-head RMSNorm weights (float32 `[d]`).
struct FluxCUDAQKV: Sendable {
    let projection: FluxCUDALinear
    let queryNorm: DeviceTensor
    let keyNorm: DeviceTensor
    let heads: Int

    /// Projects `[B, S, D]` tokens and normalizes queries and keys per head: `RMSNorm(q)·w_q`, `RMSNorm(k)·w_k`.
    func callAsFunction(_ x: DeviceTensor, _ ops: FluxCUDAOps) throws -> FluxCUDAHeads {
        let parts = try ops.splitLastDimension(try ops.linear(projection, x), count: 3)
        let (batch, tokens, width) = (x.shape[0], x.shape[1], parts[0].shape[2])
        let shape = [batch, tokens, heads, width / heads]
        let query = try ops.context.rmsNorm(try parts[0].reshaped(shape), weight: queryNorm)
        let key = try ops.context.rmsNorm(try parts[1].reshaped(shape), weight: keyNorm)
        return FluxCUDAHeads(query: query, key: key, value: try parts[2].reshaped(shape))
    }
}

enum FluxCUDAAttention {
    /// RoPE on queries and keys (in place), then attention over the whole sequence; heads merged to `[B, S, D]`.
    static func attend(_ heads: FluxCUDAHeads, rotary: FluxCUDARotary, _ ops: FluxCUDAOps) throws -> DeviceTensor {
        let context = ops.context
        try context.applyRotary(heads.query, cos: rotary.cos, sin: rotary.sin, into: heads.query)
        try context.applyRotary(heads.key, cos: rotary.cos, sin: rotary.sin, into: heads.key)
        let output = try context.attention(query: heads.query, key: heads.key, value: heads.value)
        let shape = output.shape
        return try output.reshaped([shape[0], shape[1], shape[2] * shape[3]])
    }

    /// `first` then `second` along the token axis.
    static func concat(_ first: FluxCUDAHeads, _ second: FluxCUDAHeads, _ ops: FluxCUDAOps) throws -> FluxCUDAHeads {
        FluxCUDAHeads(
            query: try ops.concatTokens([first.query, second.query]), key: try ops.concatTokens([first.key, second.key]),
            value: try ops.concatTokens([first.value, second.value]))
    }
}
