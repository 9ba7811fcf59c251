import NunchakuCore
import SVDQuant

/// An SVDQuant W4A4 linear (INT4 or NVFP4) with the fast (FP8, Hopper) numerics: the 4-bit codes stay 4-bit on the
/// GPU; each forward runs the activation pass (w4a4_fp8_quantize.cu: smoothing, per-token e4m3), the weight
/// expansion into an e4m3 scratch (w4a4_fp8_weights.cu: the layer's dense equivalent in the smoothed input space,
/// the low-rank branch `proj_up · (smooth ⊙ proj_down)ᵀ` added on the tensor cores, relative to a per-channel unit),
/// and one cuBLASLt FP8 GEMM over `gemmDepth` columns with the per-token and per-channel scales and the bias in its
/// epilogue. `W4A4FastReference` is its CPU reference; docs/hopper.md has the math, the error against the exact
/// mode and the speed.
public final class CUDASVDQW4A4FastLinear: Sendable {
    public let parameters: W4A4FastParameters
    public let engine: CUDAW4A4FastEngine
    /// u8 [N, K/2], canonical (low nibble first).
    let qweight: DeviceTensor
    /// [N, K/G]: INT4 scales in the activation dtype, NVFP4 micro-scales as e4m3 bytes (transposed, so the expansion
    /// kernel's scale loads are contiguous).
    let groupScales: DeviceTensor
    /// f32 [N]: `f[n]` (`W4A4FastParameters.rowFactors`).
    let rowFactors: DeviceTensor
    /// f32 [N]: `1 / u[n]`.
    let inverseUnits: DeviceTensor
    /// f32 [N]: the epilogue's per-channel scale `u[n]`.
    let channelScales: DeviceTensor
    /// [N, R] in the activation dtype.
    let projUp: DeviceTensor
    /// [K, R] in the activation dtype: `smooth ⊙ proj_down`.
    let smoothedProjDown: DeviceTensor
    /// The activation pass (smoothing, per-token e4m3).
    let input: W4A4FastInputPass
    /// [N] in the activation dtype (shifted layers: corrected, `W4A4FastParameters.bias`).
    let bias: DeviceTensor?

    public var name: String { parameters.name }
    public var inFeatures: Int { parameters.inFeatures }
    public var outFeatures: Int { parameters.outFeatures }
    public var activationDType: ActivationDType { parameters.type }

    /// Folds (`W4A4FastParameters`) and uploads `weights` for activations of `activationDType` (the weights' own
    /// dtype when nil).
    /// - Throws: the folding's errors (rank, K, smoothing, `wcscales`, `proj_down`), allocation and copy errors.
    public init(weights: SVDQW4A4Weights, activationDType: ActivationDType? = nil, engine: CUDAW4A4FastEngine, stream: CUDAStream? = nil) throws {
        let type = activationDType ?? weights.weightDType
        let p = try W4A4FastParameters(weights: weights, type: type)
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
        rowFactors = try floats(p.rowFactors, [n])
        inverseUnits = try floats(p.inverseUnits, [n])
        channelScales = try floats(p.channelScales, [n])
        projUp = try halves(p.projUp, [n, r])
        smoothedProjDown = try halves(p.smoothedProjDown, [k, r])
        input = W4A4FastInputPass(engine: engine, type: type, inFeatures: k, depth: p.gemmDepth, shifted: p.shifted,
                                  inverseSmooth: try floats(p.inverseSmooth, [k]))
        bias = try p.bias.map { try halves($0, [n]) }
        parameters = p
        self.engine = engine
        try engine.reserveWeights(byteCount: foldedByteCount, stream: stream)
    }

    /// [..., K] activations of the layer's dtype → [..., N], followed by GELU when `gelu` is set (the GEMM's
    /// epilogue applies it to the fp32 result, so no separate pass and one rounding). Queued on `stream` (the
    /// input's stream when nil).
    public func forward(_ x: DeviceTensor, gelu: Bool = false, stream: CUDAStream? = nil) throws -> DeviceTensor {
        try forward(.values(x), gelu: gelu, stream: stream)
    }

    /// `forward` of `input` into a new tensor [..., N] (the input's leading dimensions).
    public func forward(_ input: W4A4FastInput, gelu: Bool = false, stream: CUDAStream? = nil) throws -> DeviceTensor {
        let rows = switch input {
        case let .values(x): try W4A4OperandCheck.rows(x, inFeatures: inFeatures, "\(name) fast W4A4")
        case let .quantized(activations): activations.scales.elementCount
        }
        let stream = stream ?? input.workStream
        let output = try DeviceTensor(shape: [rows, outFeatures], dtype: activationDType.dtype, context: engine.context, stream: stream)
        try forward(input, gelu: gelu, accumulate: false, into: output, stream: stream)
        return try output.reshaped(input.leadingShape + [outFeatures])
    }

    /// `forward` writing every element of `output` ([M, N] in the layer's dtype). The weights come from the
    /// prefetcher of the engine's lane for `stream` when this call follows the model's learned layer order (expanded on its side stream
    /// while the previous layer ran), else they are expanded in line.
    public func forward(_ x: DeviceTensor, gelu: Bool = false, into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        try forward(.values(x), gelu: gelu, into: output, stream: stream)
    }

    /// `forward(_:gelu:into:stream:)` of `input` (16-bit values, or activations a producer quantized for this layer).
    public func forward(_ input: W4A4FastInput, gelu: Bool = false, into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        try forward(input, gelu: gelu, accumulate: false, into: output, stream: stream)
    }

    /// `output ← output + layer(x)` for `output` [M, N] in the layer's dtype: the FP8 GEMM's epilogue adds the old
    /// values (cuBLASLt's C with beta 1) to the fp32 result, so the sum is rounded once (where a separate add rounds
    /// the layer's output first, then the sum).
    public func forward(_ x: DeviceTensor, accumulatingInto output: DeviceTensor, stream: CUDAStream? = nil) throws {
        try forward(.values(x), accumulatingInto: output, stream: stream)
    }

    /// `forward(_:accumulatingInto:stream:)` of `input`.
    public func forward(_ input: W4A4FastInput, accumulatingInto output: DeviceTensor, stream: CUDAStream? = nil) throws {
        try forward(input, gelu: false, accumulate: true, into: output, stream: stream)
    }

    /// The layer's activation pass: the smoothing and depth a kernel must use to write `W4A4FastInput.quantized`
    /// activations for it.
    public var inputPass: W4A4FastInputPass { input }

    /// The forward behind the public ones; `channels` replaces the epilogue's per-channel scale and bias (the gated
    /// forward's), nil keeps the layer's own.
    func forward(_ input: W4A4FastInput, gelu: Bool, accumulate: Bool, channels: W4A4FastChannels? = nil, into output: DeviceTensor,
                 stream: CUDAStream?) throws {
        let stream = stream ?? input.workStream
        let weights = try engine.lane(for: stream).prefetcher.begin(self, stream: stream)
        let activations = try self.input.activations(of: input, stream: stream, "\(name) fast W4A4")
        try multiply(activations, weights: weights, gelu: gelu, accumulate: accumulate,
                     channels: channels ?? W4A4FastChannels(scales: channelScales, bias: bias), into: output, stream: stream)
    }

    /// Step 3 on `weights` as the prefetcher gave them (waiting for a prefetch, expanding in line, or into a pool
    /// scratch).
    func multiply(_ activations: (codes: DeviceTensor, scales: DeviceTensor), weights: CUDAW4A4WeightPrefetcher.Weights, gelu: Bool,
                  accumulate: Bool, channels: W4A4FastChannels, into output: DeviceTensor, stream: CUDAStream) throws {
        switch weights {
        case let .prefetched(slot, ready):
            try stream.wait(for: ready)
            try multiply(activations, weightBuffer: slot, gelu: gelu, accumulate: accumulate, channels: channels, into: output, stream: stream)
        case let .inLine(slot):
            try expandWeights(into: slot, stream: stream, overlappingPredecessor: true)
            try multiply(activations, weightBuffer: slot, gelu: gelu, accumulate: accumulate, channels: channels, into: output, stream: stream)
        case .pool:
            try multiply(activations, weightBuffer: try foldedWeights(stream: stream).buffer, gelu: gelu, accumulate: accumulate,
                         channels: channels, into: output, stream: stream)
        }
    }

    /// Step 1 (w4a4_fp8_quantize.cu): e4m3 codes [M, depth] and per-token scales f32 [M], allocated on `stream`.
    public func quantize(_ x: DeviceTensor, stream: CUDAStream? = nil) throws -> (codes: DeviceTensor, scales: DeviceTensor) {
        let stream = stream ?? x.buffer.workStream
        return try input.activations(x, stream: stream, "\(name) fast W4A4 quantize")
    }

    /// Step 1 writing every byte of `result` (codes u8 [M, depth], scales f32 [M]).
    public func quantize(_ x: DeviceTensor, into result: (codes: DeviceTensor, scales: DeviceTensor), stream: CUDAStream? = nil) throws {
        try input.quantize(x, into: result, stream: stream ?? x.buffer.workStream, "\(name) fast W4A4 quantize")
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
    /// Rows up to 3072 values: `kept6` with 64 threads from 1024 rows (M = 4608, K = 3072: 13.0 µs against 17.8 µs
    /// for the plain kernel), else `kept3` with 128 (M = 333: 2.9 against 3.6). Longer rows: the smallest power of
    /// two from 64 threads that holds the row in registers (64 values each) from 1024 rows, with `wide` (K = 12288:
    /// 52.3 against 55.9 µs); 256 threads `plain` for fewer rows. At most 1024 threads.
    static func quantizeLaunch(rows: Int, inFeatures: Int) -> QuantizeLaunch {
        let many = rows >= 1024
        if inFeatures <= 3072 { return QuantizeLaunch(variant: many ? "kept6" : "kept3", threads: many ? 64 : 128) }
        let needed = many ? (inFeatures + 63) / 64 : 256
        var threads = 64
        while threads < needed && threads < 1024 { threads *= 2 }
        return QuantizeLaunch(variant: many ? "wide" : "plain", threads: threads)
    }

    /// Step 2 (w4a4_fp8_weights.cu): the e4m3 weight scratch [N, depth], allocated on `stream` from the pool.
    public func foldedWeights(stream: CUDAStream? = nil) throws -> DeviceTensor {
        let stream = stream ?? engine.context.currentStream
        let folded = try DeviceTensor(shape: [outFeatures, parameters.gemmDepth], dtype: .u8, context: engine.context, stream: stream)
        try foldedWeights(into: folded, stream: stream)
        return folded
    }

    /// Step 2 writing every byte of `folded` (u8 [N, depth]).
    public func foldedWeights(into folded: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "\(name) fast W4A4 weights"
        let n = outFeatures, depth = parameters.gemmDepth
        guard folded.shape == [n, depth] else { throw NunchakuError.shapeMismatch(context: "\(op) output", expected: [n, depth], actual: folded.shape) }
        try W4A4OperandCheck.tensor(folded, dtype: .u8, op, "output")
        try expandWeights(into: folded.buffer, stream: stream ?? folded.buffer.workStream, overlappingPredecessor: true)
    }

    /// The bytes of the folded weights [N, depth].
    var foldedByteCount: Int { outFeatures * parameters.gemmDepth }

    /// Step 2 into the first `foldedByteCount` bytes of `buffer` (a pool scratch or a prefetch slot); with
    /// `overlappingPredecessor`, the Hopper kernels launch early while `engine.launchesExpansionsEarly` is on.
    func expandWeights(into buffer: DeviceBuffer, stream: CUDAStream, overlappingPredecessor: Bool) throws {
        let op = "\(name) fast W4A4 weights"
        let n = outFeatures, depth = parameters.gemmDepth
        guard buffer.byteCount >= foldedByteCount else {
            throw NunchakuError.invalidArgument(context: "\(op) output", reason: "\(buffer.byteCount) bytes for \(foldedByteCount)")
        }
        let hopper = engine.expandsWithWGMMA
        let launch = Self.expansionLaunch(outFeatures: n, depth: depth, rank: parameters.rank, hopper: hopper)
        let kernel = try engine.context.kernels.kernel(
            Self.expansionKernel(precision: parameters.precision, type: activationDType, rank: parameters.rank, hopper: hopper))
        try kernel.setMaxDynamicSharedMemory(launch.sharedBytes)
        try kernel.launch(
            grid: launch.grid, block: CUDADim3(launch.threads), sharedMemoryBytes: launch.sharedBytes, stream: stream,
            arguments: [qweight.argument, groupScales.argument, rowFactors.argument, inverseUnits.argument, projUp.argument,
                        smoothedProjDown.argument, buffer.argument, .int32(Int32(n)), .int32(Int32(inFeatures)),
                        .int32(Int32(parameters.rank)), .int32(Int32(depth))],
            overlappingPredecessor: overlappingPredecessor && Self.expandsWithWGMMAKernel(rank: parameters.rank, hopper: hopper)
                && engine.launchesExpansionsEarly)
    }

    /// Columns of the scratch per block of the wgmma expansion kernels: W4A4_WGMMA_PARTS (3) parts of 64. On an H100,
    /// INT4, 3 parts ran 1.04–1.13× one part of the same kernel; 2 parts were level with 3 but at 3072², 4 slower
    /// (docs/hopper.md "Session 15").
    static let wgmmaColumnsPerBlock = 192

    /// Whether a layer of `rank` expands on the Hopper (`_wgmma_…_r32`) kernels: rank 32 with kernels built for sm_90a.
    static func expandsWithWGMMAKernel(rank: Int, hopper: Bool) -> Bool { rank == 32 && hopper }

    /// The expansion kernel for a layer: w4a4_fp8_weights.cu compiles rank 32 (FLUX's checkpoints) as a constant in
    /// its `_r32` kernels (5–7 % faster on an H200, docs/hopper.md "Session 11"), and on Hopper (`hopper`: kernels built
    /// for sm_90a) as its `_wgmma_…_r32` kernels (docs/hopper.md "Session 14", "Session 15"); other ranks take the
    /// general mma.sync ones.
    static func expansionKernel(precision: SVDQuantPrecision, type: ActivationDType, rank: Int, hopper: Bool) -> String {
        let form = expandsWithWGMMAKernel(rank: rank, hopper: hopper) ? "wgmma_" : ""
        return "w4a4_fp8_expand_weights_\(form)\(precision == .nvfp4 ? "nvfp4" : "int4")_\(type)\(rank == 32 ? "_r32" : "")"
    }

    /// The geometry of w4a4_fp8_weights.cu (scripts/w4a4_expand_bench.py mirrors it). The wgmma kernels (rank 32 on
    /// Hopper): one warpgroup per 64 rows × `wgmmaColumnsPerBlock` columns; shared memory for the 4 KB tiles of up and of
    /// each 64-column part's down plus 1024 bytes of alignment slack. The others: one block of 256 threads per 128 rows ×
    /// 256 columns of the scratch (measured on an H200 against 128 columns: 54.6 against 62.6 µs at N = 21504, K = 3072;
    /// "Session 9"); dynamic shared memory for the block's rows of `smoothedProjDown` (256) and `projUp` (128), R 16-bit
    /// values a row.
    static func expansionLaunch(outFeatures: Int, depth: Int, rank: Int, hopper: Bool) -> (grid: CUDADim3, threads: Int, sharedBytes: Int) {
        if expandsWithWGMMAKernel(rank: rank, hopper: hopper) {
            let parts = wgmmaColumnsPerBlock / 64
            return (CUDADim3((depth + wgmmaColumnsPerBlock - 1) / wgmmaColumnsPerBlock, (outFeatures + 63) / 64), 128,
                    4096 * (1 + parts) + 1024)
        }
        let rowsPerBlock = 128, columnsPerBlock = 256
        return (CUDADim3((depth + columnsPerBlock - 1) / columnsPerBlock, (outFeatures + rowsPerBlock - 1) / rowsPerBlock), 256,
                (columnsPerBlock + rowsPerBlock) * 2 * rank)
    }

    /// Step 3: the FP8 GEMM with scales and bias (and GELU when `gelu` is set), into `output` [M, N] of the
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

    /// Step 3 on the [N, depth] codes at the start of `weightBuffer`, with `channels`' scale and bias.
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
