import NunchakuCore

/// adaLN modulation applied after a LayerNorm: `y·(scaleOffset + scale) + shift` with per-sample `shift` and `scale`.
public struct AdaLNModulation: Sendable {
    public let shift: ModulationChunk
    public let scale: ModulationChunk
    /// 1 for diffusers' `x·(1 + scale) + shift`; 0 where the +1 is already in the modulation's bias (Nunchaku).
    public let scaleOffset: Float

    public init(shift: ModulationChunk, scale: ModulationChunk, scaleOffset: Float = 1) {
        self.shift = shift
        self.scale = scale
        self.scaleOffset = scaleOffset
    }
}

extension CUDAContext {
    /// LayerNorm over the last dimension without affine parameters, optionally fused with adaLN modulation:
    /// `y = (x − mean)/sqrt(var + eps)`, then `y·(scaleOffset + scale) + shift` when `modulation` is given.
    ///
    /// `x` is `[B, S, D]` (bf16 or f16, D a multiple of 8 up to `layerNormMaximumWidth`), `output` the same shape and
    /// dtype, not `x`'s memory; the modulation chunks are `[B, D]` vectors in the same dtype. Statistics are float32.
    /// Queued on `stream` (the input's stream when nil).
    /// - Throws: `NunchakuError` naming the operand for a wrong dtype, shape or width, before launching.
    public func layerNorm(_ x: DeviceTensor, modulation: AdaLNModulation? = nil, eps: Float = 1e-6,
                          into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "layerNorm"
        let launch = try LayerNormLaunch(x, modulation: modulation, eps: eps, op)
        try OperandCheck.dtype(output, x.dtype, op, "output")
        try OperandCheck.shape(output, x.shape, op, "output")
        try OperandCheck.distinct(output, x, op)
        try launch.run("nunchaku_layernorm_\(launch.suffix)", arguments: [x.argument, output.argument] + launch.modulationArguments + launch.rowArguments,
                       context: self, stream: stream ?? x.buffer.workStream)
    }

    /// Values a LayerNorm row holds in registers at most: 1024 threads × 4 chunks of 8 (ops_norm.cu).
    static let layerNormMaximumWidth = 1024 * 4 * 8

    /// The LayerNorm block for rows of `width`: the smallest power of two from 64 whose threads hold the row in four
    /// chunks of eight values each (3072 → 128 threads, three chunks each).
    static func layerNormThreads(width: Int) -> Int {
        let needed = (width / 8 + 3) / 4
        var threads = 64
        while threads < needed { threads *= 2 }
        return threads
    }

    /// `layerNorm(_:modulation:eps:into:stream:)` into a new tensor allocated on the stream.
    public func layerNorm(_ x: DeviceTensor, modulation: AdaLNModulation? = nil, eps: Float = 1e-6,
                          stream: CUDAStream? = nil) throws -> DeviceTensor {
        let output = try DeviceTensor(shape: x.shape, dtype: x.dtype, context: self, stream: stream ?? x.buffer.workStream)
        try layerNorm(x, modulation: modulation, eps: eps, into: output, stream: stream)
        return output
    }

    /// RMSNorm over the last dimension (`torch.nn.RMSNorm`): `x·rsqrt(mean(x²) + eps)·weight`.
    ///
    /// `x` is any shape whose last dimension D is a multiple of 4 (FLUX's per-head norm: `[B, S, H, 128]`), bf16 or
    /// f16; `weight` is float32 `[D]`; `output` has `x`'s shape and dtype (it may not be `x`'s memory).
    /// - Throws: `NunchakuError` naming the operand for a wrong dtype, shape or width, before launching.
    public func rmsNorm(_ x: DeviceTensor, weight: DeviceTensor, eps: Float = 1e-6, into output: DeviceTensor,
                        stream: CUDAStream? = nil) throws {
        let op = "rmsNorm"
        let suffix = try OperandCheck.suffix(x, op, "x")
        let width = try OperandCheck.width(x, multipleOf: 4, op, "x")
        try OperandCheck.dtype(weight, .f32, op, "weight")
        try OperandCheck.shape(weight, [width], op, "weight")
        try OperandCheck.dtype(output, x.dtype, op, "output")
        try OperandCheck.shape(output, x.shape, op, "output")
        try OperandCheck.distinct(output, x, op)
        let rows = x.elementCount / width
        guard rows > 0 else { return }
        let rowsPerBlock = 4
        try kernels.kernel("nunchaku_rmsnorm_\(suffix)").launch(
            grid: CUDADim3((rows + rowsPerBlock - 1) / rowsPerBlock), block: CUDADim3(32 * rowsPerBlock),
            stream: stream ?? x.buffer.workStream,
            arguments: [x.argument, output.argument, weight.argument, .int64(Int64(rows)),
                        .int32(try OperandCheck.int32(width, op, "width")), .float(eps)])
    }

    /// `rmsNorm(_:weight:eps:into:stream:)` into a new tensor allocated on the stream.
    public func rmsNorm(_ x: DeviceTensor, weight: DeviceTensor, eps: Float = 1e-6, stream: CUDAStream? = nil) throws -> DeviceTensor {
        let output = try DeviceTensor(shape: x.shape, dtype: x.dtype, context: self, stream: stream ?? x.buffer.workStream)
        try rmsNorm(x, weight: weight, eps: eps, into: output, stream: stream)
        return output
    }
}

/// A LayerNorm launch over `x` `[B, S, D]` after the checks every LayerNorm kernel needs (ops_norm.cu): one block of
/// `threads` per row, and the kernel arguments that describe the modulation and the rows.
struct LayerNormLaunch {
    /// The kernel name suffix of x's dtype.
    let suffix: String
    /// B·S.
    let rows: Int
    /// D.
    let width: Int
    /// `CUDAContext.layerNormThreads(width:)`.
    let threads: Int
    /// shift (address, stride), scale (address, stride), scaleOffset: null addresses without modulation.
    let modulationArguments: [KernelArgument]
    /// width, tokens per sample, eps.
    let rowArguments: [KernelArgument]

    /// - Throws: `NunchakuError` naming `op` and the operand unless x is a bf16 or f16 `[B, S, D]` with D a multiple
    ///   of 8 up to `CUDAContext.layerNormMaximumWidth`, and the modulation's chunks are `[B, D]` in x's dtype.
    init(_ x: DeviceTensor, modulation: AdaLNModulation?, eps: Float, _ op: String) throws {
        suffix = try OperandCheck.suffix(x, op, "x")
        try OperandCheck.rank(x, 3, op, "x")
        width = try OperandCheck.width(x, multipleOf: 8, op, "x")
        guard width <= CUDAContext.layerNormMaximumWidth else {
            throw NunchakuError.unsupported(context: "\(op) x \(x.shape)", reason: "rows wider than \(CUDAContext.layerNormMaximumWidth) values")
        }
        let (batch, tokens) = (x.shape[0], x.shape[1])
        var shift: (address: CUdeviceptr, stride: Int) = (0, 0)
        var scale: (address: CUdeviceptr, stride: Int) = (0, 0)
        if let modulation {
            shift = try modulation.shift.resolve(batch: batch, width: width, dtype: x.dtype, op, "shift")
            scale = try modulation.scale.resolve(batch: batch, width: width, dtype: x.dtype, op, "scale")
        }
        rows = batch * tokens
        threads = CUDAContext.layerNormThreads(width: width)
        modulationArguments = [.pointer(shift.address), .int64(Int64(shift.stride)), .pointer(scale.address), .int64(Int64(scale.stride)),
                               .float(modulation?.scaleOffset ?? 0)]
        rowArguments = [.int32(try OperandCheck.int32(width, op, "width")), .int32(try OperandCheck.int32(tokens, op, "tokens")), .float(eps)]
    }

    /// Launches `kernel` with `arguments` on `stream` (nothing for zero rows).
    func run(_ kernel: String, arguments: [KernelArgument], context: CUDAContext, stream: CUDAStream) throws {
        guard rows > 0 else { return }
        try context.kernels.kernel(kernel).launch(grid: CUDADim3(rows), block: CUDADim3(threads), stream: stream, arguments: arguments)
    }
}
