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

/// The checked launch of `qkv_heads` for one stream: `[B, S, 3·H·D]` projections written into `[B, J, H, D]` joint
/// heads at a token offset (both entry points of ops_qkv_heads.cu take these).
struct QKVHeadsLaunch {
    let batch: Int
    let tokens: Int
    let jointTokens: Int
    let heads: Int
    let headDim: Int
    let tokenOffset: Int

    /// Checks `qkv` against joint heads of `jointShape` and the norm and table operands.
    /// - Throws: `NunchakuError` naming the operand whose dtype or shape is wrong, or the offset that does not fit.
    init(qkv: DeviceTensor, jointShape: [Int], queryNorm: DeviceTensor, keyNorm: DeviceTensor, cos: DeviceTensor,
         sin: DeviceTensor, tokenOffset: Int, _ op: String) throws {
        try OperandCheck.rank(qkv, 3, op, "qkv")
        guard jointShape.count == 4 else {
            throw NunchakuError.invalidArgument(context: op, reason: "joint heads \(jointShape) must be [B, J, H, D]")
        }
        (batch, jointTokens, heads, headDim) = (jointShape[0], jointShape[1], jointShape[2], jointShape[3])
        tokens = qkv.shape[1]
        self.tokenOffset = tokenOffset
        try OperandCheck.shape(qkv, [batch, tokens, 3 * heads * headDim], op, "qkv")
        guard headDim % 4 == 0, headDim <= 128, tokenOffset >= 0, tokenOffset + tokens <= jointTokens else {
            throw NunchakuError.invalidArgument(
                context: op, reason: "head width \(headDim) must be a multiple of 4 up to 128 and tokens \(tokenOffset)..<\(tokenOffset + tokens) must lie in the \(jointTokens) joint tokens")
        }
        for (tensor, name, shape) in [(queryNorm, "queryNorm", [headDim]), (keyNorm, "keyNorm", [headDim]),
                                      (cos, "cos", [jointTokens, headDim]), (sin, "sin", [jointTokens, headDim])] {
            try OperandCheck.dtype(tensor, .f32, op, name)
            try OperandCheck.shape(tensor, shape, op, name)
        }
    }

    /// One warp per (token, part), walking the heads; 8 warps a block.
    var units: Int { batch * tokens * 3 }
    var isEmpty: Bool { units == 0 || heads == 0 }
    var grid: CUDADim3 { CUDADim3((units + Self.unitsPerBlock - 1) / Self.unitsPerBlock) }
    var block: CUDADim3 { CUDADim3(32 * Self.unitsPerBlock) }
    static let unitsPerBlock = 8

    /// units, S, H as kernel arguments.
    func counts(_ op: String) throws -> [KernelArgument] {
        [.int64(Int64(units)), .int32(try OperandCheck.int32(tokens, op, "tokens")), .int32(try OperandCheck.int32(heads, op, "heads"))]
    }

    /// J and the token offset as kernel arguments.
    func placement(_ op: String) throws -> [KernelArgument] {
        [.int32(try OperandCheck.int32(jointTokens, op, "joint tokens")), .int32(try OperandCheck.int32(tokenOffset, op, "token offset"))]
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
        let launch = try QKVHeadsLaunch(qkv: qkv, jointShape: heads.query.shape, queryNorm: queryNorm, keyNorm: keyNorm, cos: cos,
                                        sin: sin, tokenOffset: tokenOffset, op)
        for (tensor, name) in [(heads.query, "query"), (heads.key, "key"), (heads.value, "value")] {
            try OperandCheck.dtype(tensor, qkv.dtype, op, name)
            try OperandCheck.shape(tensor, heads.query.shape, op, name)
            try OperandCheck.distinct(tensor, qkv, op)
        }
        guard !launch.isEmpty else { return }
        try kernels.kernel("nunchaku_qkv_heads_\(suffix)").launch(
            grid: launch.grid, block: launch.block, stream: stream ?? qkv.buffer.workStream,
            arguments: [qkv.argument, heads.query.argument, heads.key.argument, heads.value.argument, queryNorm.argument,
                        keyNorm.argument, cos.argument, sin.argument] + (try launch.counts(op))
                + [.int32(try OperandCheck.int32(launch.headDim, op, "head width"))] + (try launch.placement(op)) + [.float(eps)])
    }
}
