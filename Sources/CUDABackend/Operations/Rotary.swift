import NunchakuCore

extension CUDAContext {
    /// Rotary position embedding on adjacent pairs (FLUX): `out[2k] = x[2k]·cos − x[2k+1]·sin`,
    /// `out[2k+1] = x[2k+1]·cos + x[2k]·sin`, per token and head.
    ///
    /// `x` is `[B, S, H, D]` (bf16 or f16, D a multiple of 8); `cos` and `sin` are float32 `[S, D]` with each angle
    /// repeated for both elements of its pair (upload `RotaryTable.cosTensor`/`sinTensor`, computed from float64
    /// angles on the CPU); `output` has `x`'s shape and dtype and may be `x` itself.
    /// - Throws: `NunchakuError` for wrong dtypes or shapes, before launching.
    public func applyRotary(_ x: DeviceTensor, cos: DeviceTensor, sin: DeviceTensor, into output: DeviceTensor,
                            stream: CUDAStream? = nil) throws {
        let op = "applyRotary"
        let suffix = try OperandCheck.suffix(x, op, "x")
        try OperandCheck.rank(x, 4, op, "x")
        let headDim = try OperandCheck.width(x, multipleOf: 8, op, "x")
        let (tokens, heads) = (x.shape[1], x.shape[2])
        for (table, name) in [(cos, "cos"), (sin, "sin")] {
            try OperandCheck.dtype(table, .f32, op, name)
            try OperandCheck.shape(table, [tokens, headDim], op, name)
        }
        try OperandCheck.dtype(output, x.dtype, op, "output")
        try OperandCheck.shape(output, x.shape, op, "output")
        let groups = x.elementCount / 8
        guard groups > 0 else { return }
        let (grid, block) = gridStrideLaunch(items: groups)
        try kernels.kernel("nunchaku_rotary_\(suffix)").launch(
            grid: grid, block: block, stream: stream ?? x.buffer.workStream,
            arguments: [x.argument, output.argument, cos.argument, sin.argument, .int64(Int64(groups)),
                        .int32(try OperandCheck.int32(tokens, op, "tokens")), .int32(try OperandCheck.int32(heads, op, "heads")),
                        .int32(try OperandCheck.int32(headDim, op, "head dimension"))])
    }
}
