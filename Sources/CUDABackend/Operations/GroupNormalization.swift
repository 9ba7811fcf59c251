import NunchakuCore

extension CUDAContext {
    /// The most groups `groupNorm` takes.
    public static let groupNormMaxGroups = 128

    /// GroupNorm with affine parameters over channels-last bf16 maps `[B, P, C]` (P pixels), eps as given, optionally
    /// followed by SiLU: `y = round((x − mean)·rstd·γ + β)`, then `round(y·sigmoid(y))` (groupnorm.cu). Mean and the
    /// variance of the centred values are accumulated in float64 per (sample, group).
    ///
    /// `gamma`, `beta` are float32 `[C]`; C even, C/G even and G ≤ 128; `output` `[B, P, C]` bf16, not `x`'s memory.
    /// - Throws: `NunchakuError` for wrong dtypes, shapes or group counts, before launching.
    public func groupNorm(_ x: DeviceTensor, groups: Int, gamma: DeviceTensor, beta: DeviceTensor, eps: Double, silu: Bool,
                          into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "groupNorm"
        try OperandCheck.dtype(x, .bf16, op, "x")
        try OperandCheck.rank(x, 3, op, "x")
        let (batch, pixels, channels) = (x.shape[0], x.shape[1], x.shape[2])
        guard groups > 0, groups <= Self.groupNormMaxGroups, channels % groups == 0, (channels / groups) % 2 == 0,
              channels / 2 <= 1024 else {
            throw NunchakuError.unsupported(
                context: "\(op) x \(x.shape)", reason: "\(groups) groups of \(channels) channels: needs an even channel count per group, at most \(Self.groupNormMaxGroups) groups and 2048 channels")
        }
        for (tensor, name) in [(gamma, "gamma"), (beta, "beta")] {
            try OperandCheck.dtype(tensor, .f32, op, name)
            try OperandCheck.shape(tensor, [channels], op, name)
        }
        try OperandCheck.dtype(output, .bf16, op, "output")
        try OperandCheck.shape(output, x.shape, op, "output")
        try OperandCheck.distinct(output, x, op)
        guard batch * pixels > 0 else { return }
        let stream = stream ?? x.buffer.workStream
        let entries = batch * groups
        let sums = try DeviceTensor(shape: [2, entries], dtype: .f64, context: self, stream: stream)
        let statistics = try DeviceTensor(shape: [entries, 2], dtype: .f32, context: self, stream: stream)
        try stream.fill(sums.buffer, with: 0)
        let pairs = channels / 2
        let threads = pairs * max(1, 256 / pairs)
        let pixelsPerBlock = 256
        let sumsKernel = try kernels.kernel("nunchaku_groupnorm_sums_bf16")
        let squares = sums.buffer.address + UInt64(entries * 8)
        for (first, target) in [(KernelArgument.pointer(0), sums.argument), (sums.argument, .pointer(squares))] {
            try sumsKernel.launch(
                grid: CUDADim3((pixels + pixelsPerBlock - 1) / pixelsPerBlock, batch), block: CUDADim3(threads), stream: stream,
                arguments: [x.argument, first, target, .int32(try OperandCheck.int32(pixels, op, "pixels")), .int32(Int32(channels)),
                            .int32(Int32(groups)), .int32(Int32(pixelsPerBlock))])
        }
        try kernels.kernel("nunchaku_groupnorm_finalize").launch(
            grid: CUDADim3((entries + 127) / 128), block: CUDADim3(128), stream: stream,
            arguments: [sums.argument, .pointer(squares), statistics.argument, .int32(Int32(entries)),
                        .double(Double(pixels * channels / groups)), .double(eps)])
        try launchElementwise("nunchaku_groupnorm_apply_bf16", items: x.elementCount, stream: stream,
                              arguments: [x.argument, output.argument, statistics.argument, gamma.argument, beta.argument,
                                          .int64(Int64(pixels)), .int32(Int32(channels)), .int32(Int32(groups)),
                                          .int64(Int64(x.elementCount)), .int32(silu ? 1 : 0)])
    }
}
