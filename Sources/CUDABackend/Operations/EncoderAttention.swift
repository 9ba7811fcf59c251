import NunchakuCore

/// Where the query, key and value of each token lie in a fused projection output `[B, S, rowStride]` (bf16): the
/// query of head h at `h·headDim`, its key `keyOffset` elements later, its value `valueOffset` later.
public struct FusedQKVLayout: Sendable, Equatable {
    public let heads: Int
    public let headDim: Int
    public let keyOffset: Int
    public let valueOffset: Int

    /// The layout of `x·[Wq; Wk; Wv]ᵀ`: queries, keys and values of `heads·headDim` each, side by side.
    public init(heads: Int, headDim: Int) {
        self.heads = heads
        self.headDim = headDim
        keyOffset = heads * headDim
        valueOffset = 2 * heads * headDim
    }

    /// The row length of the fused tensor.
    public var rowStride: Int { 3 * heads * headDim }
}

extension CUDAContext {
    /// The largest head dimension `encoderAttention` takes.
    public static let encoderAttentionMaxHeadDim = 512

    /// `softmax(scale·Q·Kᵀ + bias)·V` per sample and head in float32 (encoder_attention.cu), for short sequences and
    /// wide single heads: CLIP (causal), T5 (relative position bias, scale 1), the VAE mid block (one head of C).
    ///
    /// - Parameters:
    ///   - qkv: bf16 `[B, S, 3·H·d]` in `layout`; d even and at most 512.
    ///   - positionBias: float32 `[H, 2S − 1]`, entry (h, j − i + S − 1) added to the score of query i and key j.
    ///   - causal: query i sees keys 0…i only.
    ///   - output: bf16 `[B, S, H·d]`.
    /// - Throws: `NunchakuError` naming the operand for wrong dtypes or shapes, before launching.
    public func encoderAttention(_ qkv: DeviceTensor, layout: FusedQKVLayout, scale: Float, positionBias: DeviceTensor? = nil,
                                 causal: Bool = false, into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "encoderAttention"
        try OperandCheck.dtype(qkv, .bf16, op, "qkv")
        try OperandCheck.rank(qkv, 3, op, "qkv")
        let (batch, tokens) = (qkv.shape[0], qkv.shape[1])
        let (heads, headDim) = (layout.heads, layout.headDim)
        guard heads > 0, headDim > 0, headDim % 2 == 0, headDim <= Self.encoderAttentionMaxHeadDim else {
            throw NunchakuError.unsupported(
                context: op, reason: "head dimension \(headDim) with \(heads) heads: the kernel takes even head dimensions up to \(Self.encoderAttentionMaxHeadDim)")
        }
        try OperandCheck.shape(qkv, [batch, tokens, layout.rowStride], op, "qkv")
        try OperandCheck.dtype(output, .bf16, op, "output")
        try OperandCheck.shape(output, [batch, tokens, heads * headDim], op, "output")
        try OperandCheck.distinct(output, qkv, op)
        if let positionBias {
            try OperandCheck.dtype(positionBias, .f32, op, "positionBias")
            try OperandCheck.shape(positionBias, [heads, 2 * tokens - 1], op, "positionBias")
        }
        guard batch * tokens > 0 else { return }
        let chunks = headDim <= 64 ? 2 : headDim <= 128 ? 4 : 16
        let paddedWords = headDim / 2 + 1
        let sharedBytes = 4 * (16 + 32) * paddedWords + 2 * 32 * headDim
        let kernel = try kernels.kernel("nunchaku_encoder_attention_bf16_c\(chunks)")
        if sharedBytes > 48 * 1024 { try kernel.setMaxDynamicSharedMemory(sharedBytes) }
        try kernel.launch(
            grid: CUDADim3((tokens + 15) / 16, heads, batch), block: CUDADim3(128), sharedMemoryBytes: sharedBytes,
            stream: stream ?? qkv.buffer.workStream,
            arguments: [qkv.argument, output.argument, positionBias?.argument ?? .pointer(0),
                        .int32(try OperandCheck.int32(tokens, op, "tokens")), .int32(Int32(heads)), .int32(Int32(headDim)),
                        .int64(Int64(layout.rowStride)), .int64(Int64(layout.keyOffset)), .int64(Int64(layout.valueOffset)),
                        .float(scale), .int32(causal ? 1 : 0)])
    }
}
