import NunchakuCore

/// The float8 attention operands written straight by the QKV-heads pass, for attention over the joint sequence of
/// one or more token streams (`CUDAContext.writeHeads(of:…into: AttentionFP8Heads…)` per stream, then
/// `writeValueCodes(of:)`, then `attentionFP8(_:into:)` on `operands`).
///
/// q and k need no amax pass: RMSNorm makes a head's squares sum to at most d, so after the weight and the rotation
/// every element satisfies |y| ≤ √d · max|w| (`AttentionFP8Launch.headBound`), and the codes are
/// `e4m3(y · 448 / bound)` with the fixed scales `bound / 448`. e4m3 is floating point, so the fixed scale costs
/// precision only for values it pushes into the subnormal range (docs/hopper-attention.md has the measured error).
/// v has no bound: the pass writes it in the activation format and merges each (sample, head)'s max |v| into
/// `valueMaxima`; `writeValueCodes` then makes the transposed v codes with the dynamic scale `amax / 448`.
///
/// One attention per instance: the maxima are zeroed when it is made and only grow.
public struct AttentionFP8Heads: Sendable {
    /// The attention kernel's operands: q and k codes (written by `writeHeads`), v codes and scales (`writeValueCodes`).
    public let operands: AttentionFP8Operands
    /// v `[B, J, H, 128]` in the activation format.
    public let value: DeviceTensor
    /// At least |q| and |k| of every element the streams write (the larger of the streams' `headBound`s).
    public let queryBound: Float
    public let keyBound: Float
    /// max |v| per (sample, head) as float32 bits, slot (sample · H + head) · `AttentionFP8Launch.maximaStride`.
    let valueMaxima: DeviceTensor

    /// Buffers for heads `[batch, tokens, heads, 128]` in `dtype` (bf16 or f16), the maxima zeroed on `context`'s
    /// default stream (a memset, which a CUDA graph captures).
    /// - Throws: `NunchakuError.invalidArgument` for a bound that is negative or not finite, or another dtype.
    public init(batch: Int, tokens: Int, heads: Int, dtype: DType, queryBound: Float, keyBound: Float, context: CUDAContext) throws {
        let op = "AttentionFP8Heads"
        for (bound, name) in [(queryBound, "query"), (keyBound, "key")] where !(bound.isFinite && bound >= 0) {
            throw NunchakuError.invalidArgument(context: op, reason: "\(name) bound \(bound) must be finite and not negative")
        }
        guard dtype == .bf16 || dtype == .f16 else {
            throw NunchakuError.dtypeMismatch(context: "\(op) value", expected: [.bf16, .f16], actual: dtype)
        }
        operands = try AttentionFP8Operands(batch: batch, tokens: tokens, heads: heads, context: context)
        value = try DeviceTensor(shape: [batch, tokens, heads, AttentionFP8Launch.headDim], dtype: dtype, context: context)
        valueMaxima = try DeviceTensor(shape: [batch, heads, AttentionFP8Launch.maximaStride], dtype: .u32, context: context)
        try valueMaxima.buffer.stream.fill(valueMaxima.buffer, with: 0)
        self.queryBound = queryBound
        self.keyBound = keyBound
    }

    /// The factor q (`part` 0) or k (1) values are multiplied by before rounding to e4m3: 448 / bound (0 for a zero
    /// bound, whose heads are all zero), and the scale the attention kernel multiplies the codes by: bound / 448.
    public static func factorAndScale(bound: Float) -> (factor: Float, scale: Float) {
        (bound > 0 ? 448 / bound : 0, bound / 448)
    }
}

extension AttentionFP8Launch {
    /// Words between the (sample, head) slots of `AttentionFP8Heads`' v maxima: one 128-byte line each, so that the
    /// atomic maxima of different heads do not queue on one line.
    public static let maximaStride = 32

    /// A bound of |y| for every element y of a head after RMSNorm with weight `normWeight` (`[d]`) and RoPE:
    /// √d · max|w| (the squares of a normalized head sum to at most d, and a rotation keeps a pair's length), times
    /// 1 + 2⁻⁷ for the rounding of the normalized value to 16 bits and of the float32 arithmetic.
    public static func headBound(normWeight: [Float]) -> Float {
        let largest = normWeight.reduce(Float(0)) { max($0, abs($1)) }
        return Float(normWeight.count).squareRoot() * largest * (1 + 1 / 128)
    }
}

extension CUDAContext {
    /// One token stream's float8 heads from its fused projection, in one pass (`writeHeads(…into: AttentionHeads…)`'s
    /// RMSNorm and RoPE, in IEEE float32): q and k as codes `e4m3(y · 448 / bound)` (nearest-even, saturating) into
    /// `heads.operands`, v into `heads.value`, and each (sample, head)'s max |v| merged into the heads' maxima; rows
    /// `tokenOffset ..< tokenOffset + S`. `AttentionFP8HeadsReference` computes the same bits on the CPU.
    ///
    /// - `qkv`: `[B, S, 3·H·128]` in `heads.value`'s dtype. `queryNorm`, `keyNorm`: float32 `[128]` whose
    ///   `AttentionFP8Launch.headBound` is at most `heads.queryBound`, `heads.keyBound` (larger values saturate at
    ///   ±448 codes). `cos`, `sin`: float32 `[J, 128]`.
    /// - Throws: `NunchakuError` naming the operand whose dtype or shape is wrong, or the offset that does not fit.
    public func writeHeads(of qkv: DeviceTensor, queryNorm: DeviceTensor, keyNorm: DeviceTensor, cos: DeviceTensor,
                           sin: DeviceTensor, eps: Float = 1e-6, into heads: AttentionFP8Heads, tokenOffset: Int,
                           stream: CUDAStream? = nil) throws {
        let op = "writeHeads (fp8)"
        let suffix = try OperandCheck.suffix(qkv, op, "qkv")
        try OperandCheck.dtype(heads.value, qkv.dtype, op, "value")
        try OperandCheck.distinct(heads.value, qkv, op)
        let launch = try QKVHeadsLaunch(qkv: qkv, jointShape: heads.value.shape, queryNorm: queryNorm, keyNorm: keyNorm,
                                        cos: cos, sin: sin, tokenOffset: tokenOffset, op)
        guard !launch.isEmpty else { return }
        let query = AttentionFP8Heads.factorAndScale(bound: heads.queryBound), key = AttentionFP8Heads.factorAndScale(bound: heads.keyBound)
        try kernels.kernel("nunchaku_qkv_heads_fp8_\(suffix)").launch(
            grid: launch.grid, block: launch.block, stream: stream ?? qkv.buffer.workStream,
            arguments: [qkv.argument, heads.operands.query.argument, heads.operands.key.argument, heads.value.argument,
                        heads.valueMaxima.argument, .int32(Int32(AttentionFP8Launch.maximaStride)), .float(query.factor),
                        .float(key.factor), queryNorm.argument, keyNorm.argument, cos.argument, sin.argument]
                + (try launch.counts(op)) + (try launch.placement(op)) + [.float(eps)])
    }

    /// The v codes of `heads` (after every stream's `writeHeads`): `e4m3(v · 448 / amax)` per (sample, head),
    /// transposed and key-permuted as `AttentionFP8Operands` holds them, and the scales `[3, B, H]` (q and k:
    /// bound / 448; v: amax / 448).
    /// - Throws: `NunchakuError.invalidArgument` when the grid would be too large.
    public func writeValueCodes(of heads: AttentionFP8Heads, stream: CUDAStream? = nil) throws {
        let op = "writeValueCodes"
        let suffix = try OperandCheck.suffix(heads.value, op, "value")
        let (batch, tokens, headCount) = heads.operands.heads
        guard batch * tokens * headCount > 0 else { return }
        guard batch <= 65535, headCount <= 65535 else {
            throw NunchakuError.invalidArgument(context: op, reason: "\(batch) samples × \(headCount) heads exceed the grid")
        }
        let padded = AttentionFP8Launch.paddedTokens(tokens)
        try kernels.kernel("nunchaku_attention_fp8_value_codes_\(suffix)").launch(
            grid: CUDADim3(AttentionFP8Launch.chunks(padded), headCount, batch), block: CUDADim3(AttentionFP8Launch.operandThreads),
            stream: stream ?? heads.value.buffer.workStream,
            arguments: [heads.value.argument, heads.valueMaxima.argument, .int32(Int32(AttentionFP8Launch.maximaStride)),
                        heads.operands.valueTransposed.argument, heads.operands.scales.argument,
                        .int32(try OperandCheck.int32(tokens, op, "tokens")), .int32(try OperandCheck.int32(padded, op, "padded tokens")),
                        .float(AttentionFP8Heads.factorAndScale(bound: heads.queryBound).scale),
                        .float(AttentionFP8Heads.factorAndScale(bound: heads.keyBound).scale)])
    }
}
