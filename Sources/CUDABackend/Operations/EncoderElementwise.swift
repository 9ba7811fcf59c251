import NunchakuCore

extension CUDAContext {
    /// `output = a + b` elementwise on bf16 tensors of one shape (float32 sum, rounded once); `output` may be `a`.
    /// - Throws: `NunchakuError` for wrong dtypes or shapes, before launching.
    public func add(_ a: DeviceTensor, _ b: DeviceTensor, into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "add"
        for (tensor, name) in [(a, "a"), (b, "b"), (output, "output")] {
            try OperandCheck.dtype(tensor, .bf16, op, name)
            try OperandCheck.shape(tensor, a.shape, op, name)
        }
        try OperandCheck.distinct(output, b, op)
        try launchElementwise("nunchaku_encoder_add_bf16", items: (a.elementCount + 7) / 8, stream: stream ?? a.buffer.workStream,
                              arguments: [a.argument, b.argument, output.argument, .int64(Int64(a.elementCount))])
    }

    /// CLIP's `quick_gelu`, `x·sigmoid(1.702·x)`, on bf16 (`output` may be `x`).
    /// - Throws: `NunchakuError` for wrong dtypes or shapes, before launching.
    public func quickGELU(_ x: DeviceTensor, into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "quickGELU"
        try OperandCheck.dtype(x, .bf16, op, "x")
        try OperandCheck.dtype(output, .bf16, op, "output")
        try OperandCheck.shape(output, x.shape, op, "output")
        try launchElementwise("nunchaku_encoder_quick_gelu_bf16", items: x.elementCount, stream: stream ?? x.buffer.workStream,
                              arguments: [x.argument, output.argument, .int64(Int64(x.elementCount))])
    }

    /// T5 v1.1's gated feed-forward activation on the fused output `[..., 2F]` of `wi_0 ‖ wi_1`:
    /// `output[..., i] = round(round(gelu_tanh(g))·u)`, g = `fused[..., i]`, u = `fused[..., F + i]`; `output` `[..., F]`.
    /// - Throws: `NunchakuError` for wrong dtypes or shapes, before launching.
    public func gatedGELU(_ fused: DeviceTensor, into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "gatedGELU"
        try OperandCheck.dtype(fused, .bf16, op, "fused")
        let doubled = try OperandCheck.width(fused, multipleOf: 2, op, "fused")
        try OperandCheck.dtype(output, .bf16, op, "output")
        try OperandCheck.shape(output, Array(fused.shape.dropLast()) + [doubled / 2], op, "output")
        try OperandCheck.distinct(output, fused, op)
        let rows = fused.elementCount / doubled
        try launchElementwise("nunchaku_encoder_gated_gelu_bf16", items: output.elementCount, stream: stream ?? fused.buffer.workStream,
                              arguments: [fused.argument, output.argument, .int64(Int64(rows)),
                                          .int32(try OperandCheck.int32(doubled / 2, op, "features"))])
    }

    /// Launches a grid-stride kernel over `items` work items unless there are none.
    func launchElementwise(_ name: String, items: Int, stream: CUDAStream, arguments: [KernelArgument]) throws {
        guard items > 0 else { return }
        let (grid, block) = gridStrideLaunch(items: items)
        try kernels.kernel(name).launch(grid: grid, block: block, stream: stream, arguments: arguments)
    }
}
