import NunchakuCore

/// The joint attention operands one or more token streams write into: `[B, J, H, D]` each, one dtype.
public struct AttentionHeads: Sendable {
    public let query: DeviceTensor
    public let key: DeviceTensor
    public let value: DeviceTensor

    /// Existing buffers (each `[B, J, H, D]`, one dtype; `CUDAContext.writeHeads` checks them).
    public init(query: DeviceTensor, key: DeviceTensor, value: DeviceTensor) {
        self.query = query
        self.key = key
        self.value = value
    }

    /// Uninitialised `[batch, tokens, heads, headDim]` buffers on `context`'s default stream.
    public init(batch: Int, tokens: Int, heads: Int, headDim: Int, dtype: DType, context: CUDAContext) throws {
        let shape = [batch, tokens, heads, headDim]
        query = try DeviceTensor(shape: shape, dtype: dtype, context: context)
        key = try DeviceTensor(shape: shape, dtype: dtype, context: context)
        value = try DeviceTensor(shape: shape, dtype: dtype, context: context)
    }
}

extension CUDAContext {
    /// One token stream's heads from its fused projection, in one pass: per-head RMSNorm of q and k
    /// (`x·rsqrt(mean(x²) + eps)·weight`, rounded to the activation format), RoPE on adjacent pairs with the table
    /// rows of their joint positions, v copied — the same values as `rmsNorm` then `applyRotary` — written into
    /// rows `tokenOffset ..< tokenOffset + S` of `heads`.
    ///
    /// - `qkv`: `[B, S, 3·H·D]` (bf16 or f16), q ‖ k ‖ v along the last dimension; D a multiple of 4, at most 128.
    /// - `queryNorm`, `keyNorm`: float32 `[D]`. `cos`, `sin`: float32 `[J, D]` (`RotaryTable` of the joint sequence).
    /// - `heads`: `[B, J, H, D]` in `qkv`'s dtype.
    /// - Throws: `NunchakuError` naming the operand whose dtype or shape is wrong, or the offset that does not fit.
    public func writeHeads(of qkv: DeviceTensor, queryNorm: DeviceTensor, keyNorm: DeviceTensor, cos: DeviceTensor,
                           sin: DeviceTensor, eps: Float = 1e-6, into heads: AttentionHeads, tokenOffset: Int,
                           stream: CUDAStream? = nil) throws {
        let op = "writeHeads"
        let suffix = try OperandCheck.suffix(qkv, op, "qkv")
        try OperandCheck.rank(qkv, 3, op, "qkv")
        try OperandCheck.rank(heads.query, 4, op, "query")
        let (batch, jointTokens, headCount, headDim) = (heads.query.shape[0], heads.query.shape[1], heads.query.shape[2], heads.query.shape[3])
        let tokens = qkv.shape[1]
        try OperandCheck.shape(qkv, [batch, tokens, 3 * headCount * headDim], op, "qkv")
        guard headDim % 4 == 0, headDim <= 128, tokenOffset >= 0, tokenOffset + tokens <= jointTokens else {
            throw NunchakuError.invalidArgument(
                context: op, reason: "head width \(headDim) must be a multiple of 4 up to 128 and tokens \(tokenOffset)..<\(tokenOffset + tokens) must lie in the \(jointTokens) joint tokens")
        }
        for (tensor, name) in [(heads.query, "query"), (heads.key, "key"), (heads.value, "value")] {
            try OperandCheck.dtype(tensor, qkv.dtype, op, name)
            try OperandCheck.shape(tensor, heads.query.shape, op, name)
            try OperandCheck.distinct(tensor, qkv, op)
        }
        for (tensor, name, shape) in [(queryNorm, "queryNorm", [headDim]), (keyNorm, "keyNorm", [headDim]),
                                      (cos, "cos", [jointTokens, headDim]), (sin, "sin", [jointTokens, headDim])] {
            try OperandCheck.dtype(tensor, .f32, op, name)
            try OperandCheck.shape(tensor, shape, op, name)
        }
        // One warp per (token, part), walking the heads.
        let units = batch * tokens * 3
        guard units > 0, headCount > 0 else { return }
        let unitsPerBlock = 8
        try kernels.kernel("nunchaku_qkv_heads_\(suffix)").launch(
            grid: CUDADim3((units + unitsPerBlock - 1) / unitsPerBlock), block: CUDADim3(32 * unitsPerBlock),
            stream: stream ?? qkv.buffer.stream,
            arguments: [qkv.argument, heads.query.argument, heads.key.argument, heads.value.argument, queryNorm.argument,
                        keyNorm.argument, cos.argument, sin.argument, .int64(Int64(units)),
                        .int32(try OperandCheck.int32(tokens, op, "tokens")), .int32(try OperandCheck.int32(headCount, op, "heads")),
                        .int32(try OperandCheck.int32(headDim, op, "head width")),
                        .int32(try OperandCheck.int32(jointTokens, op, "joint tokens")),
                        .int32(try OperandCheck.int32(tokenOffset, op, "token offset")), .float(eps)])
    }
}
