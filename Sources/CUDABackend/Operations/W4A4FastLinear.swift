import NunchakuCore
import SVDQuant

/// An SVDQuant W4A4 linear (INT4 or NVFP4) with the fast (FP8, Hopper) numerics: the 4-bit codes stay 4-bit on the
/// GPU; each forward runs the low-rank down-projection (16-bit: w4a4_fp8_lowrank_down.cu for few rows, else
/// cuBLASLt) and the activation pass (w4a4_fp8_quantize.cu: smoothing, per-token e4m3 of the input and of the
/// low-rank values) — or both as one pass, `quantizeFused`, when
/// the engine's `fusesLowRank` is on —, the weight expansion into an e4m3 scratch
/// with the group scales folded in (w4a4_fp8_weights.cu), and one cuBLASLt FP8 GEMM over `gemmDepth` columns with the
/// per-token and per-channel scales and the bias in its epilogue. `W4A4FastReference` is its CPU reference;
/// docs/hopper.md has the math, the error against the exact mode and the speed.
public final class CUDASVDQW4A4FastLinear: Sendable {
    public let parameters: W4A4FastParameters
    public let engine: CUDAW4A4FastEngine
    /// u8 [N, K/2], canonical (low nibble first).
    let qweight: DeviceTensor
    /// [N, K/G]: INT4 scales in the activation dtype, NVFP4 micro-scales as e4m3 bytes (transposed, so the expansion
    /// kernel's scale loads are contiguous).
    let groupScales: DeviceTensor
    /// f32 [N]: what the folded weights are relative to (`W4A4FastParameters.weightUnits`).
    let weightUnits: DeviceTensor
    /// f32 [N]: the epilogue's per-channel scale.
    let channelScales: DeviceTensor
    /// Steps 1 and 2 over the layer's own low-rank columns (smoothing, `proj_down`ᵀ [R, K], `1/beta`).
    let input: W4A4FastInputPass
    /// u8 [N, R].
    let upCodes: DeviceTensor
    /// [N] in the activation dtype.
    let bias: DeviceTensor?

    public var name: String { parameters.name }
    public var inFeatures: Int { parameters.inFeatures }
    public var outFeatures: Int { parameters.outFeatures }
    public var activationDType: ActivationDType { parameters.type }

    /// Folds (`W4A4FastParameters`) and uploads `weights` for activations of `activationDType` (the weights' own
    /// dtype when nil), its low-rank columns placed as `lowRankColumns` says (nil: alone; layers that will share
    /// one activation pass take `W4A4FastLowRankColumns.shared(ranks:)`, `CUDAW4A4FastSharedInput`).
    /// - Throws: the folding's errors (rank, zero `wcscales`, columns), allocation and copy errors.
    public init(weights: SVDQW4A4Weights, activationDType: ActivationDType? = nil, lowRankColumns: W4A4FastLowRankColumns? = nil,
                engine: CUDAW4A4FastEngine, stream: CUDAStream? = nil) throws {
        let type = activationDType ?? weights.weightDType
        let p = try W4A4FastParameters(weights: weights, type: type, lowRankColumns: lowRankColumns)
        let context = engine.context
        let stream = stream ?? context.currentStream
        let n = p.outFeatures, k = p.inFeatures, r = p.rank
        func upload(_ tensor: Tensor) throws -> DeviceTensor { try DeviceTensor(uploading: tensor, context: context, stream: stream) }
        func floats(_ values: [Float], _ shape: [Int]) throws -> DeviceTensor { try upload(Tensor(values, shape: shape)) }
        func halves(_ values: [Float], _ shape: [Int]) throws -> DeviceTensor {
            try upload(DeviceHalfValues.tensor(values.map { type.bits($0) }, shape: shape, type: type))
        }
        qweight = try upload(weights.canonical.qweight.contiguous())
        let scalesTransposed = DeviceHalfValues.transposed(p.groupScales, rows: k / p.groupSize, columns: n)
        switch p.precision {
        case .int4: groupScales = try halves(scalesTransposed, [n, k / p.groupSize])
        case .nvfp4:
            let bytes = scalesTransposed.map { FloatFormats.e4m3fnBits($0) }
            groupScales = try upload(Tensor(shape: [n, k / p.groupSize], dtype: .u8, bytes: bytes))
        }
        weightUnits = try floats(p.weightUnits, [n])
        channelScales = try floats(p.channelScales, [n])
        input = W4A4FastInputPass(
            engine: engine, type: type, inFeatures: k, rank: r, lowRankOffset: p.lowRankColumns.offset, depth: p.gemmDepth,
            shifted: p.shifted, inverseSmooth: try floats(p.inverseSmooth, [k]), projDownTransposed: try halves(p.projDownTransposed, [r, k]),
            inverseBeta: try floats(p.inverseBeta, [r]))
        upCodes = try upload(Tensor(shape: [n, r], dtype: .u8, bytes: p.upCodes))
        bias = try p.bias.map { try halves($0, [n]) }
        parameters = p
        self.engine = engine
        try engine.reserveWeights(byteCount: foldedByteCount, stream: stream)
    }

    /// [..., K] activations of the layer's dtype → [..., N], followed by GELU when `gelu` is set (the GEMM's
    /// epilogue applies it to the fp32 result, so no separate pass and one rounding). Queued on `stream` (the
    /// input's stream when nil).
    public func forward(_ x: DeviceTensor, gelu: Bool = false, stream: CUDAStream? = nil) throws -> DeviceTensor {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, "\(name) fast W4A4")
        let stream = stream ?? x.buffer.workStream
        let output = try DeviceTensor(shape: [rows, outFeatures], dtype: activationDType.dtype, context: engine.context, stream: stream)
        try forward(x, gelu: gelu, into: output, stream: stream)
        return try output.reshaped(Array(x.shape.dropLast()) + [outFeatures])
    }

    /// `forward` writing every element of `output` ([M, N] in the layer's dtype). The weights come from the
    /// prefetcher of the engine's lane for `stream` when this call follows the model's learned layer order (expanded on its side stream
    /// while the previous layer ran), else they are expanded in line.
    public func forward(_ x: DeviceTensor, gelu: Bool = false, into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        try forward(x, gelu: gelu, accumulate: false, into: output, stream: stream)
    }

    /// `output ← output + layer(x)` for `output` [M, N] in the layer's dtype: the FP8 GEMM's epilogue adds the old
    /// values (cuBLASLt's C with beta 1) to the fp32 result, so the sum is rounded once (where a separate add rounds
    /// the layer's output first, then the sum).
    public func forward(_ x: DeviceTensor, accumulatingInto output: DeviceTensor, stream: CUDAStream? = nil) throws {
        try forward(x, gelu: false, accumulate: true, into: output, stream: stream)
    }

    /// The forward behind the public ones; `channels` replaces the epilogue's per-channel scale and bias (the gated
    /// forward's), nil keeps the layer's own.
    func forward(_ x: DeviceTensor, gelu: Bool, accumulate: Bool, channels: W4A4FastChannels? = nil, into output: DeviceTensor,
                 stream: CUDAStream?) throws {
        let stream = stream ?? x.buffer.workStream
        try W4A4OperandCheck.tensor(x, dtype: activationDType.dtype, "\(name) fast W4A4", "input")
        let weights = try engine.lane(for: stream).prefetcher.begin(self, stream: stream)
        let activations = engine.fusesLowRank && fusedQuantizeSharedBytes != nil
            ? try quantizeFused(x, stream: stream)
            : try input.activations(x, stream: stream, "\(name) fast W4A4")
        try multiply(activations, weights: weights, gelu: gelu, accumulate: accumulate,
                     channels: channels ?? W4A4FastChannels(scales: channelScales, bias: bias), into: output, stream: stream)
    }

    /// Step 4 on `weights` as the prefetcher gave them (waiting for a prefetch, expanding in line, or into a pool
    /// scratch).
    func multiply(_ activations: (codes: DeviceTensor, scales: DeviceTensor), weights: CUDAW4A4WeightPrefetcher.Weights, gelu: Bool,
                  accumulate: Bool, channels: W4A4FastChannels, into output: DeviceTensor, stream: CUDAStream) throws {
        switch weights {
        case let .prefetched(slot, ready):
            try stream.wait(for: ready)
            try multiply(activations, weightBuffer: slot, gelu: gelu, accumulate: accumulate, channels: channels, into: output, stream: stream)
        case let .inLine(slot):
            try expandWeights(into: slot, stream: stream)
            try multiply(activations, weightBuffer: slot, gelu: gelu, accumulate: accumulate, channels: channels, into: output, stream: stream)
        case .pool:
            try multiply(activations, weightBuffer: try foldedWeights(stream: stream).buffer, gelu: gelu, accumulate: accumulate,
                         channels: channels, into: output, stream: stream)
        }
    }

    /// Step 1: `x · proj_down` [M, R] in the layer's dtype (fp32 accumulation): w4a4_fp8_lowrank_down.cu for the
    /// shapes where it is faster (`lowRankDownLaunch`), else cuBLASLt.
    public func lowRank(_ x: DeviceTensor, stream: CUDAStream? = nil) throws -> DeviceTensor {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, "\(name) fast W4A4 low-rank")
        let stream = stream ?? x.buffer.workStream
        let result = try DeviceTensor(shape: [rows, parameters.rank], dtype: activationDType.dtype, context: engine.context, stream: stream)
        try lowRank(x, into: result, stream: stream)
        return result
    }

    /// Step 1 writing every element of `result` ([M, R] in the layer's dtype).
    public func lowRank(_ x: DeviceTensor, into result: DeviceTensor, stream: CUDAStream? = nil) throws {
        try input.lowRank(x, into: result, stream: stream ?? x.buffer.workStream, "\(name) fast W4A4 low-rank")
    }

    /// The geometry of w4a4_fp8_lowrank_down.cu for M = `rows`, or nil where cuBLASLt is faster (H200, CUDA graphs,
    /// against torch.matmul on the same inputs, docs/hopper.md): the kernel wins for few rows (M = 512, K = 3072:
    /// 6.5 against 6.8–7.5 µs; M = 333: 5.3–6.6 against 7.2–7.6 µs at R = 16–128; M = 1: 4.2 against 5.8 µs), and loses for
    /// M ≥ 1536, K = 12288 or R = 256. 16 warps split K; 8 rows per block up to R = 64, 16 rows above.
    public static func lowRankDownLaunch(rows: Int, inFeatures: Int, rank: Int) -> (rowsPerBlock: Int, warps: Int, sharedBytes: Int)? {
        guard rows >= 1, rows <= 512, inFeatures >= 32, inFeatures <= 3072, inFeatures % 32 == 0, rank >= 16, rank <= 128, rank % 16 == 0
        else { return nil }
        let rowsPerBlock = rank <= 64 ? 8 : 16, warps = 16
        return (rowsPerBlock, warps, warps * rowsPerBlock * 40 * 4)
    }

    /// Step 2 (w4a4_fp8_quantize.cu): e4m3 codes [M, depth] and per-token scales f32 [M], allocated on `stream`.
    public func quantize(_ x: DeviceTensor, lowRank: DeviceTensor, stream: CUDAStream? = nil) throws -> (codes: DeviceTensor, scales: DeviceTensor) {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, "\(name) fast W4A4 quantize")
        let stream = stream ?? x.buffer.workStream
        let codes = try DeviceTensor(shape: [rows, parameters.gemmDepth], dtype: .u8, context: engine.context, stream: stream)
        let scales = try DeviceTensor(shape: [rows], dtype: .f32, context: engine.context, stream: stream)
        try quantize(x, lowRank: lowRank, into: (codes, scales), stream: stream)
        return (codes, scales)
    }

    /// Step 2 writing every byte of `result` (codes u8 [M, depth], scales f32 [M]).
    public func quantize(_ x: DeviceTensor, lowRank: DeviceTensor, into result: (codes: DeviceTensor, scales: DeviceTensor),
                         stream: CUDAStream? = nil) throws {
        try input.quantize(x, lowRank: lowRank, into: result, stream: stream ?? x.buffer.workStream, "\(name) fast W4A4 quantize")
    }

    /// Steps 1 and 2 in one pass that reads x once (w4a4_fp8_quantize.cu, `w4a4_fp8_quantize_lowrank`: 16 rows per
    /// block in shared memory, `x · proj_down` on the tensor cores with fp32 sums rounded to the layer's dtype, then
    /// the same quantization): e4m3 codes [M, depth] and per-token scales f32 [M], allocated on `stream`. The codes
    /// of the low-rank columns may differ from the two-pass path's by one e4m3 step where the two sums of a
    /// low-rank value round differently (and then a row's scale, when that value is its largest).
    /// - Throws: `NunchakuError.unsupported` when K and R need more shared memory than a block has
    ///   (`fusedQuantizeSharedBytes` is nil); operand errors.
    public func quantizeFused(_ x: DeviceTensor, stream: CUDAStream? = nil) throws -> (codes: DeviceTensor, scales: DeviceTensor) {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, "\(name) fast W4A4 fused quantize")
        let stream = stream ?? x.buffer.workStream
        let codes = try DeviceTensor(shape: [rows, parameters.gemmDepth], dtype: .u8, context: engine.context, stream: stream)
        let scales = try DeviceTensor(shape: [rows], dtype: .f32, context: engine.context, stream: stream)
        try quantizeFused(x, into: (codes, scales), stream: stream)
        return (codes, scales)
    }

    /// `quantizeFused` writing every byte of `result` (codes u8 [M, depth], scales f32 [M]).
    public func quantizeFused(_ x: DeviceTensor, into result: (codes: DeviceTensor, scales: DeviceTensor), stream: CUDAStream? = nil) throws {
        let op = "\(name) fast W4A4 fused quantize"
        guard let sharedBytes = fusedQuantizeSharedBytes else {
            throw NunchakuError.unsupported(
                context: op, reason: "K = \(inFeatures), R = \(parameters.rank) need more than \(Self.maximumSharedBytes) bytes of shared memory per block")
        }
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, op)
        try W4A4OperandCheck.tensor(x, dtype: activationDType.dtype, op, "input")
        try W4A4FastInputPass.checkOperands(
            [(result.codes, [rows, parameters.gemmDepth], DType.u8, "codes"), (result.scales, [rows], DType.f32, "scales")], op)
        guard rows > 0 else { return }
        let kernel = try engine.context.kernels.kernel("w4a4_fp8_quantize_lowrank_\(activationDType)\(parameters.shifted ? "_shifted" : "")")
        try kernel.setMaxDynamicSharedMemory(sharedBytes)
        try kernel.launch(
            grid: CUDADim3((rows + Self.fusedRowsPerBlock - 1) / Self.fusedRowsPerBlock), block: CUDADim3(256),
            sharedMemoryBytes: sharedBytes, stream: stream ?? x.buffer.workStream,
            arguments: [x.argument, input.inverseSmooth.argument, input.projDownTransposed.argument, input.inverseBeta.argument,
                        result.codes.argument, result.scales.argument, .int32(Int32(rows)), .int32(Int32(inFeatures)),
                        .int32(Int32(parameters.rank)), .int32(Int32(parameters.gemmDepth)), .int32(Int32(parameters.lowRankColumns.offset))])
    }

    /// Rows per block of the fused pass (one mma.sync tile).
    static let fusedRowsPerBlock = 16
    /// The most dynamic shared memory a block may have on sm_90 (227 KiB).
    static let maximumSharedBytes = 232_448

    /// The fused pass's shared memory: the x tile [16, K + 8] in 16-bit and four partial sums [16, R] in f32; nil
    /// when over `maximumSharedBytes` (K above about 7000: those layers keep the two passes).
    public var fusedQuantizeSharedBytes: Int? {
        let bytes = Self.fusedRowsPerBlock * (inFeatures + 8) * 2 + 4 * Self.fusedRowsPerBlock * parameters.rank * 4
        return bytes <= Self.maximumSharedBytes ? bytes : nil
    }

    /// The quantize kernel (w4a4_fp8_quantize.cu, one block per row): its variant's name suffix and its block.
    struct QuantizeLaunch: Equatable {
        /// `kept6` / `kept3`: the row's first 6 / 3 loads per thread and their smoothing factors in registers, x read
        /// around L1; `wide`: 8 loads per thread in registers, x read around L1 and the codes stored evict-first;
        /// `plain`: 8 loads in registers, no cache hints.
        let variant: String
        let threads: Int
    }

    /// The quantize launch per shape class, as measured on an H200 (docs/hopper.md, "Session 6: quantize pass").
    /// Rows up to 3072 values with R ≤ 64 / 128: `kept6` with 64 threads from 1024 rows (M = 4608, K = 3072: 13.0 µs
    /// against 17.8 µs for the plain kernel), else `kept3` with 128 (M = 333: 2.9 against 3.6). Longer rows or larger
    /// ranks: the smallest power of two from 64 threads that holds the row in registers (64 values each) from 1024
    /// rows, with `wide` (K = 12288: 52.3 against 55.9 µs); 256 threads `plain` for fewer rows. Never fewer threads
    /// than the rank (one low-rank value per thread), at most 1024.
    static func quantizeLaunch(rows: Int, inFeatures: Int, rank: Int) -> QuantizeLaunch {
        let many = rows >= 1024
        if inFeatures <= 3072 && rank <= (many ? 64 : 128) { return QuantizeLaunch(variant: many ? "kept6" : "kept3", threads: many ? 64 : 128) }
        let needed = max(many ? (inFeatures + 63) / 64 : 256, rank, 64)
        var threads = 64
        while threads < needed && threads < 1024 { threads *= 2 }
        return QuantizeLaunch(variant: many ? "wide" : "plain", threads: threads)
    }

    /// Step 3 (w4a4_fp8_weights.cu): the e4m3 weight scratch [N, depth], allocated on `stream` from the pool.
    public func foldedWeights(stream: CUDAStream? = nil) throws -> DeviceTensor {
        let stream = stream ?? engine.context.currentStream
        let folded = try DeviceTensor(shape: [outFeatures, parameters.gemmDepth], dtype: .u8, context: engine.context, stream: stream)
        try foldedWeights(into: folded, stream: stream)
        return folded
    }

    /// Step 3 writing every byte of `folded` (u8 [N, depth]).
    public func foldedWeights(into folded: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "\(name) fast W4A4 weights"
        let n = outFeatures, depth = parameters.gemmDepth
        guard folded.shape == [n, depth] else { throw NunchakuError.shapeMismatch(context: "\(op) output", expected: [n, depth], actual: folded.shape) }
        try W4A4OperandCheck.tensor(folded, dtype: .u8, op, "output")
        try expandWeights(into: folded.buffer, stream: stream ?? folded.buffer.workStream)
    }

    /// The bytes of the folded weights [N, depth].
    var foldedByteCount: Int { outFeatures * parameters.gemmDepth }

    /// Step 3 into the first `foldedByteCount` bytes of `buffer` (a pool scratch or a prefetch slot).
    func expandWeights(into buffer: DeviceBuffer, stream: CUDAStream) throws {
        let op = "\(name) fast W4A4 weights"
        let n = outFeatures, depth = parameters.gemmDepth
        guard buffer.byteCount >= foldedByteCount else {
            throw NunchakuError.invalidArgument(context: "\(op) output", reason: "\(buffer.byteCount) bytes for \(foldedByteCount)")
        }
        let slots = n * depth / (16 * Self.expansionUnitsPerThread(parameters.precision))
        guard n * depth < Int(Int32.max) else {
            throw NunchakuError.unsupported(context: op, reason: "\(n) × \(depth) weight codes; the expansion kernel indexes with 32 bits")
        }
        let kernel = try engine.context.kernels.kernel(
            "w4a4_fp8_expand_weights_\(parameters.precision == .nvfp4 ? "nvfp4" : activationDType.description)")
        try kernel.launch(
            grid: CUDADim3((slots + 255) / 256), block: CUDADim3(256), stream: stream,
            arguments: [qweight.argument, groupScales.argument, weightUnits.argument, upCodes.argument, buffer.argument,
                        .int32(Int32(n)), .int32(Int32(inFeatures)), .int32(Int32(parameters.rank)), .int32(Int32(depth)),
                        .int32(Int32(parameters.lowRankColumns.offset))])
    }

    /// Units of 16 output columns per thread of w4a4_fp8_weights.cu (scripts/w4a4_expand_bench.py mirrors it):
    /// two for INT4 (one 16-byte code load), one for NVFP4.
    static func expansionUnitsPerThread(_ precision: SVDQuantPrecision) -> Int { precision == .nvfp4 ? 1 : 2 }

    /// Step 4: the FP8 GEMM with scales and bias (and GELU when `gelu` is set), into `output` [M, N] of the
    /// layer's dtype.
    public func multiply(_ activations: (codes: DeviceTensor, scales: DeviceTensor), weights: DeviceTensor, gelu: Bool = false,
                         into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let shape = [outFeatures, parameters.gemmDepth]
        guard weights.shape == shape else {
            throw NunchakuError.shapeMismatch(context: "\(name) fast W4A4 GEMM folded weights", expected: shape, actual: weights.shape)
        }
        try multiply(activations, weightBuffer: weights.buffer, gelu: gelu, accumulate: false,
                     channels: W4A4FastChannels(scales: channelScales, bias: bias), into: output, stream: stream)
    }

    /// Step 4 on the [N, depth] codes at the start of `weightBuffer`, with `channels`' scale and bias.
    func multiply(_ activations: (codes: DeviceTensor, scales: DeviceTensor), weightBuffer: DeviceBuffer, gelu: Bool, accumulate: Bool,
                  channels: W4A4FastChannels, into output: DeviceTensor, stream: CUDAStream?) throws {
        let op = "\(name) fast W4A4 GEMM"
        let rows = activations.scales.elementCount
        for (tensor, shape, role) in [(activations.codes, [rows, parameters.gemmDepth], "codes"), (output, [rows, outFeatures], "output")]
            where tensor.shape != shape {
            throw NunchakuError.shapeMismatch(context: "\(op) \(role)", expected: shape, actual: tensor.shape)
        }
        try W4A4OperandCheck.tensor(output, dtype: activationDType.dtype, op, "output")
        try engine.fp8Product(codes: activations.codes, weights: weightBuffer, rowScales: activations.scales, columnScales: channels.scales,
                              bias: channels.bias, gelu: gelu, accumulate: accumulate, output: output,
                              stream: stream ?? activations.codes.buffer.workStream)
    }
}
