import NunchakuCore

/// Elementwise activations on the GPU.
public enum CUDAActivation: String, Sendable, CaseIterable {
    /// GELU with the tanh approximation: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    case geluTanh = "gelu_tanh"
    /// SiLU: `x / (1 + e^(−x))`.
    case silu
}

extension CUDAContext {
    /// `activation` applied to every element of `x` (bf16 or f16, any shape), float32 arithmetic, written to
    /// `output` (same shape and dtype; may be `x` itself).
    /// - Throws: `NunchakuError` for a wrong dtype or shape, before launching.
    public func apply(_ activation: CUDAActivation, to x: DeviceTensor, into output: DeviceTensor,
                      stream: CUDAStream? = nil) throws {
        let op = activation.rawValue
        let suffix = try OperandCheck.suffix(x, op, "x")
        try OperandCheck.dtype(output, x.dtype, op, "output")
        try OperandCheck.shape(output, x.shape, op, "output")
        let count = x.elementCount
        guard count > 0 else { return }
        let (grid, block) = gridStrideLaunch(items: (count + 7) / 8)
        try kernels.kernel("nunchaku_\(activation.rawValue)_\(suffix)").launch(
            grid: grid, block: block, stream: stream ?? x.buffer.workStream,
            arguments: [x.argument, output.argument, .int64(Int64(count))])
    }

    /// `apply(_:to:into:stream:)` into a new tensor allocated on the stream.
    public func apply(_ activation: CUDAActivation, to x: DeviceTensor, stream: CUDAStream? = nil) throws -> DeviceTensor {
        let output = try DeviceTensor(shape: x.shape, dtype: x.dtype, context: self, stream: stream ?? x.buffer.workStream)
        try apply(activation, to: x, into: output, stream: stream)
        return output
    }

    /// Gated residual add: `output = residual + gate·update` with a per-sample gate (adaLN's gate chunk).
    ///
    /// `residual` and `update` are `[B, S, D]` in one dtype (bf16 or f16, D a multiple of 8), `gate` a `[B, D]` chunk,
    /// `output` `[B, S, D]`; it may be `residual` itself (the usual in-place residual update), not `update`.
    /// - Throws: `NunchakuError` for wrong dtypes, shapes or widths, before launching.
    public func gatedAdd(residual: DeviceTensor, gate: ModulationChunk, update: DeviceTensor, into output: DeviceTensor,
                         stream: CUDAStream? = nil) throws {
        let op = "gatedAdd"
        let suffix = try OperandCheck.suffix(residual, op, "residual")
        try OperandCheck.rank(residual, 3, op, "residual")
        let width = try OperandCheck.width(residual, multipleOf: 8, op, "residual")
        for (tensor, name) in [(update, "update"), (output, "output")] {
            try OperandCheck.dtype(tensor, residual.dtype, op, name)
            try OperandCheck.shape(tensor, residual.shape, op, name)
        }
        try OperandCheck.distinct(output, update, op)
        let (batch, tokens) = (residual.shape[0], residual.shape[1])
        let factor = try gate.resolve(batch: batch, width: width, dtype: residual.dtype, op, "gate")
        let rows = batch * tokens
        guard rows > 0 else { return }
        let (grid, block) = gridStrideLaunch(items: rows * width / 8)
        try kernels.kernel("nunchaku_gated_add_\(suffix)").launch(
            grid: grid, block: block, stream: stream ?? residual.buffer.workStream,
            arguments: [residual.argument, update.argument, output.argument, .pointer(factor.address),
                        .int64(Int64(factor.stride)), .int64(Int64(rows)), .int32(try OperandCheck.int32(width, op, "width")),
                        .int32(try OperandCheck.int32(tokens, op, "tokens"))])
    }
}
