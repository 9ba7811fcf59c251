import CPUBackend
import CUDABackend
import NunchakuCore

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

    /// Empty joint heads `[B, tokens, H, d]` for the streams that will write into them.
    func jointHeads(batch: Int, tokens: Int, like x: DeviceTensor, _ ops: FluxCUDAOps) throws -> AttentionHeads {
        try AttentionHeads(batch: batch, tokens: tokens, heads: heads, headDim: queryNorm.shape[0], dtype: x.dtype,
                           context: ops.context)
    }

    /// Projects `[B, S, D]` tokens and writes their heads into `joint` at `tokenOffset`: `RMSNorm(q)·w_q` and
    /// `RMSNorm(k)·w_k` with RoPE at their joint positions, and v (one fused pass, `CUDAContext.writeHeads`).
    func write(_ x: DeviceTensor, into joint: AttentionHeads, tokenOffset: Int, rotary: FluxCUDARotary,
               _ ops: FluxCUDAOps) throws {
        try ops.context.writeHeads(of: try ops.linear(projection, x), queryNorm: queryNorm, keyNorm: keyNorm, cos: rotary.cos,
                                   sin: rotary.sin, into: joint, tokenOffset: tokenOffset)
    }
}

enum FluxCUDAAttention {
    /// Attention over the whole joint sequence of normalized, rotated heads at `precision` (`.fp8`: the operands
    /// quantized to e4m3 first); heads merged to `[B, S, D]`.
    static func attend(_ heads: AttentionHeads, precision: AttentionPrecision, _ ops: FluxCUDAOps) throws -> DeviceTensor {
        let output = try ops.context.attention(heads, precision: precision)
        let shape = output.shape
        return try output.reshaped([shape[0], shape[1], shape[2] * shape[3]])
    }
}
