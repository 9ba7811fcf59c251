import NunchakuCore

/// The operand format of attention: the inputs' 16-bit format, or float8 e4m3 operands (Hopper only, about 1.45×
/// the 16-bit kernel's speed at FLUX shapes, with a measured error; docs/hopper-attention.md).
public enum AttentionPrecision: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// q, k, v and P in the activation format (bf16 or f16); every kernel.
    case bf16
    /// q, k, v as e4m3 codes with per-(sample, head) scales, P in e4m3; the wgmma kernel on sm_90a, d = 128.
    case fp8

    public var description: String { rawValue }
}

/// The float8 operands of `CUDAContext.attentionFP8` for a self-attention over `[B, S, H, 128]` heads: q and k codes
/// `[B, S, H, 128]`, v codes transposed `[B, H, 128, Spad]` (Spad = S rounded up to 16; each group of 16 keys
/// permuted, `AttentionFP8Reference.valuePosition`), all `f8e4m3fn`, and scales float32 `[3, B, H]` (q, k, v:
/// value ≈ code · scale). `CUDAContext.quantizeAttentionOperands` fills them from 16-bit heads; `AttentionFP8Heads`
/// has them written by the QKV-heads pass.
public struct AttentionFP8Operands: Sendable {
    public let query: DeviceTensor
    public let key: DeviceTensor
    public let valueTransposed: DeviceTensor
    public let scales: DeviceTensor

    /// Uninitialised operands for heads `[batch, tokens, heads, 128]`, on `context`'s default stream.
    public init(batch: Int, tokens: Int, heads: Int, context: CUDAContext) throws {
        let d = AttentionFP8Launch.headDim
        query = try DeviceTensor(shape: [batch, tokens, heads, d], dtype: .f8e4m3fn, context: context)
        key = try DeviceTensor(shape: [batch, tokens, heads, d], dtype: .f8e4m3fn, context: context)
        valueTransposed = try DeviceTensor(shape: [batch, heads, d, AttentionFP8Launch.paddedTokens(tokens)], dtype: .f8e4m3fn,
                                           context: context)
        scales = try DeviceTensor(shape: [3, batch, heads], dtype: .f32, context: context)
    }

    /// `[B, S, H]` of the heads these operands hold.
    var heads: (batch: Int, tokens: Int, heads: Int) { (query.shape[0], query.shape[1], query.shape[2]) }
}

/// The launch shapes of the float8 path (attention_fp8_operands.cu, the `…_fp8_…` entry points of attention_wgmma.cu).
public enum AttentionFP8Launch {
    /// The only head dimension the e4m3 kernel has (a tile row is one 128-byte swizzle span).
    public static let headDim = 128
    /// Tokens per block of the operand passes (attention_fp8_operands.cu).
    static let chunkTokens = 64
    static let operandThreads = 256
    /// Dynamic shared memory of the e4m3 kernel: 128 query rows and three stages of K and V tiles, 128 × 128 bytes
    /// each, 14 mbarriers, 1024 bytes of alignment slack.
    public static let sharedMemoryBytes = 7 * 128 * 128 + 14 * 8 + 1024
    /// log₂ of the largest P before rounding to e4m3 (P ≤ 256; the e4m3 range ends at 448): weights down to 2^-17
    /// of the row maximum stay nonzero instead of 2^-9. The harness measured shifts 0, 8 and log₂ 448: total errors
    /// within 1 % of each other, the kernel-alone error lowest with 8 on a peaked softmax (docs/hopper-attention.md).
    public static let weightShift: Float = 8

    /// Keys of the transposed v rounded up to 16 (the permutation's group, and a 16-byte row stride).
    public static func paddedTokens(_ tokens: Int) -> Int { (tokens + 15) / 16 * 16 }
    static func chunks(_ tokens: Int) -> Int { (tokens + chunkTokens - 1) / chunkTokens }

    /// The tensor maps the kernel reads: q or k codes `[B, S, H, 128]` (at `query`, `key`) as 4-D (128, H, S, B) with
    /// boxes of 128 × 1 × 128 × 1; v codes `[B, H, 128, Spad]` (at `value`) as (Spad, 128, H, B) with boxes of 128 keys
    /// × 128 rows; 128-byte swizzle.
    /// - Throws: `CUDAError.invalidArgument` (from `CUDATensorMapLayout`) for a misaligned address or a tensor too
    ///   large for a tensor map.
    public static func tensorMapLayouts(query: CUdeviceptr, key: CUdeviceptr, value: CUdeviceptr, batch: Int, tokens: Int,
                                        heads: Int) throws -> [CUDATensorMapLayout] {
        let d = headDim, padded = paddedTokens(tokens)
        let rows = try [("query", query), ("key", key)].map { name, address in
            try CUDATensorMapLayout(
                name: "attention fp8 \(name) [\(batch), \(tokens), \(heads), \(d)]", elementType: .uint8, address: address,
                dimensions: [d, heads, tokens, batch], strides: [d, heads * d, tokens * heads * d], box: [d, 1, 128, 1],
                swizzle: .bytes128)
        }
        let transposed = try CUDATensorMapLayout(
            name: "attention fp8 value [\(batch), \(heads), \(d), \(padded)]", elementType: .uint8, address: value,
            dimensions: [padded, d, heads, batch], strides: [padded, d * padded, heads * d * padded], box: [128, d, 1, 1],
            swizzle: .bytes128)
        return rows + [transposed]
    }
}

extension CUDAContext {
    /// The float8 operands of self-attention over `heads` (q, k, v `[B, S, H, 128]`, bf16 or f16), in two passes:
    /// per (part, sample, head) amax, then codes `e4m3(x · (448 / amax))` and scales `amax / 448`
    /// (`AttentionFP8Reference.quantize` computes the same bits on the CPU).
    /// - Throws: `NunchakuError` naming the operand whose dtype or shape is wrong.
    public func quantizeAttentionOperands(_ heads: AttentionHeads, into operands: AttentionFP8Operands,
                                          stream: CUDAStream? = nil) throws {
        let op = "quantizeAttentionOperands"
        let suffix = try OperandCheck.suffix(heads.query, op, "query")
        let (batch, tokens, headCount) = operands.heads
        let shape = [batch, tokens, headCount, AttentionFP8Launch.headDim]
        for (tensor, name) in [(heads.query, "query"), (heads.key, "key"), (heads.value, "value")] {
            try OperandCheck.dtype(tensor, heads.query.dtype, op, name)
            try OperandCheck.shape(tensor, shape, op, name)
        }
        guard batch * tokens * headCount > 0 else { return }
        let grid = CUDADim3(AttentionFP8Launch.chunks(tokens), headCount, 3 * batch)
        guard batch <= 65535 / 3, headCount <= 65535 else {
            throw NunchakuError.invalidArgument(context: op, reason: "\(batch) samples × \(headCount) heads exceed the grid")
        }
        let inputs = [heads.query.argument, heads.key.argument, heads.value.argument]
        let block = CUDADim3(AttentionFP8Launch.operandThreads)
        let stream = stream ?? heads.query.buffer.workStream
        // The first pass's per-chunk maxima, float32 [3, B, H, chunks].
        let partialMaxima = try DeviceTensor(shape: [3, batch, headCount, grid.x], dtype: .f32, context: self, stream: stream)
        let tokenCount = try OperandCheck.int32(tokens, op, "tokens")
        try kernels.kernel("nunchaku_attention_fp8_amax_\(suffix)").launch(
            grid: grid, block: block, stream: stream, arguments: inputs + [partialMaxima.argument, .int32(tokenCount)])
        try kernels.kernel("nunchaku_attention_fp8_codes_\(suffix)").launch(
            grid: grid, block: block, stream: stream,
            arguments: inputs + [partialMaxima.argument, operands.query.argument, operands.key.argument,
                                 operands.valueTransposed.argument, operands.scales.argument, .int32(tokenCount),
                                 .int32(Int32(AttentionFP8Launch.paddedTokens(tokens)))])
    }

    /// `softmax(Q·Kᵀ/√d)·V` on float8 operands (`quantizeAttentionOperands`), float32 accumulation and online
    /// softmax, P rounded to e4m3; `output` `[B, S, H, 128]` bf16 or f16. `keyMask` as in
    /// `attention(query:key:value:keyMask:kernel:into:)`.
    /// - Throws: `NunchakuError.unsupported` off sm_90a (naming the target); `NunchakuError` naming a wrong operand.
    public func attentionFP8(_ operands: AttentionFP8Operands, keyMask: DeviceTensor? = nil, into output: DeviceTensor,
                             stream: CUDAStream? = nil) throws {
        guard output.shape == operands.query.shape else {
            throw NunchakuError.shapeMismatch(context: "attentionFP8 output", expected: operands.query.shape, actual: output.shape)
        }
        try launchFP8(operands, keyMask: keyMask, outputDType: output.dtype, variant: "",
                      output: [output.argument], stream: stream ?? output.buffer.workStream)
    }

    /// The e4m3 kernel `nunchaku_attention_wgmma_fp8_<variant><dtype>_d128` on `operands`; `output` are the arguments
    /// after the tensor maps: the 16-bit output (its place is taken by a null pointer for the codes variant, whose own
    /// arguments follow the common ones, and whose blocks want `extraSharedBytes` after the plan).
    func launchFP8(_ operands: AttentionFP8Operands, keyMask: DeviceTensor?, outputDType: DType, variant: String,
                   output: [KernelArgument], codes: [KernelArgument] = [], extraSharedBytes: Int = 0, stream: CUDAStream) throws {
        let (batch, tokens, heads) = operands.heads
        let shape = operands.query.shape
        let geometry = try AttentionGeometry(
            query: shape, key: shape, value: shape, dtypes: (outputDType, outputDType, outputDType),
            keyMask: keyMask.map { ($0.shape, $0.dtype) }, output: (shape, outputDType))
        try checkFP8AttentionAvailable()
        guard batch * tokens * heads > 0 else { return }
        let maps = try AttentionFP8Launch.tensorMapLayouts(
            query: operands.query.buffer.address, key: operands.key.buffer.address, value: operands.valueTransposed.buffer.address,
            batch: batch, tokens: tokens, heads: heads).map { try encodeTensorMap($0).argument }
        let units = AttentionWGMMALaunch.workUnits(batch: batch, queryTokens: tokens, heads: heads)
        let kernel = try kernels.kernel("nunchaku_attention_wgmma_fp8_\(variant)\(outputDType.rawValue)_d128")
        let sharedBytes = AttentionFP8Launch.sharedMemoryBytes + extraSharedBytes
        try kernel.setMaxDynamicSharedMemory(sharedBytes)
        try kernel.launch(
            grid: CUDADim3(min(units, max(1, device.multiprocessorCount))), block: CUDADim3(AttentionWGMMALaunch.threadsPerBlock),
            sharedMemoryBytes: sharedBytes, stream: stream,
            arguments: maps + output + [keyMask.map(\.argument) ?? .pointer(0), .int32(Int32(tokens)), .int32(Int32(tokens)),
                                        .int32(Int32(heads)), .int32(Int32(batch)), .float(geometry.scaleLog2), operands.scales.argument,
                                        .float(AttentionFP8Launch.weightShift)] + codes)
    }

    /// Self-attention over `heads` at `precision` into a new `[B, S, H, d]` tensor: `.bf16` is
    /// `attention(query:key:value:)`; `.fp8` quantizes the operands (`quantizeAttentionOperands`) and runs
    /// `attentionFP8`.
    /// - Throws: what those throw (`.fp8` off sm_90a or at d ≠ 128: `NunchakuError.unsupported`).
    public func attention(_ heads: AttentionHeads, precision: AttentionPrecision) throws -> DeviceTensor {
        switch precision {
        case .bf16:
            return try attention(query: heads.query, key: heads.key, value: heads.value)
        case .fp8:
            let shape = heads.query.shape
            guard shape.count == 4, shape[3] == AttentionFP8Launch.headDim else {
                throw NunchakuError.unsupported(context: "fp8 attention of heads \(shape)", reason: "needs head dimension 128")
            }
            let operands = try AttentionFP8Operands(batch: shape[0], tokens: shape[1], heads: shape[2], context: self)
            try quantizeAttentionOperands(heads, into: operands)
            let output = try DeviceTensor(shape: shape, dtype: heads.query.dtype, context: self)
            try attentionFP8(operands, into: output)
            return output
        }
    }

    /// Throws `NunchakuError.unsupported` naming the kernel target unless the e4m3 kernel can run here (an sm_90a
    /// cubin and 115,824 bytes of shared memory per block).
    public func checkFP8AttentionAvailable() throws {
        let target = try kernels.target()
        guard AttentionFP8Launch.isAvailable(target: target, sharedMemoryLimit: device.maxSharedMemoryPerBlockOptin) else {
            throw NunchakuError.unsupported(
                context: "fp8 attention", reason: "needs an sm_90a cubin (H100/H200) and \(AttentionFP8Launch.sharedMemoryBytes) bytes of "
                    + "shared memory per block; kernels here are built for \(target) with \(device.maxSharedMemoryPerBlockOptin) bytes")
        }
    }
}

extension AttentionFP8Launch {
    /// Whether the e4m3 kernel runs for kernels built for `target` with `sharedMemoryLimit` bytes per block.
    public static func isAvailable(target: CUDATarget, sharedMemoryLimit: Int) -> Bool {
        target.hasHopperWGMMA && sharedMemoryBytes <= sharedMemoryLimit
    }
}
