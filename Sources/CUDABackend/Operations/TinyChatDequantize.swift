import NunchakuCore

extension CUDAContext {
    /// Expands a TinyChat W4A16 linear (Nunchaku's 4-bit T5, `W4Linear`) to its bf16 weight `[N, K]`:
    /// `w[n][k] = q·scales[k/G][n] + zeros[k/G][n]` in float32, rounded once (encoder_awq_dequant.cu).
    ///
    /// - Parameters:
    ///   - qweight: the checkpoint's `qweight`, int16 or u16 `[N/4, K]` (TinyChat's interleave of four rows).
    ///   - scales, zeros: float32 `[groups, N]` with `groups ≥ K/G` (rows past K/G, TinyChat's padding, are unused);
    ///     `zeros` is the checkpoint's `scaled_zeros` (the negated zero point times the scale).
    ///   - groupSize: G, a multiple of 8 dividing K; K must be a multiple of 64.
    ///   - weight: bf16 `[N, K]`.
    /// - Throws: `NunchakuError` naming the operand for wrong dtypes or shapes, before launching.
    public func dequantizeTinyChatW4(qweight: DeviceTensor, scales: DeviceTensor, zeros: DeviceTensor, groupSize: Int,
                                     into weight: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "dequantizeTinyChatW4"
        try OperandCheck.dtype(weight, .bf16, op, "weight")
        try OperandCheck.rank(weight, 2, op, "weight")
        let (n, k) = (weight.shape[0], weight.shape[1])
        guard n > 0, n % 4 == 0, k > 0, k % 64 == 0, groupSize > 0, groupSize % 8 == 0, k % groupSize == 0 else {
            throw NunchakuError.invalidArgument(
                context: "\(op) weight \(weight.shape)",
                reason: "needs N a multiple of 4, K a multiple of 64 and a group size (\(groupSize)) that is a multiple of 8 dividing K")
        }
        guard qweight.dtype == .i16 || qweight.dtype == .u16 else {
            throw NunchakuError.dtypeMismatch(context: "\(op) qweight \(qweight.shape)", expected: [.i16, .u16], actual: qweight.dtype)
        }
        try OperandCheck.shape(qweight, [n / 4, k], op, "qweight")
        for (tensor, name) in [(scales, "scales"), (zeros, "zeros")] {
            try OperandCheck.dtype(tensor, .f32, op, name)
            guard tensor.shape.count == 2, tensor.shape[1] == n, tensor.shape[0] >= k / groupSize else {
                throw NunchakuError.shapeMismatch(context: "\(op) \(name)", expected: [k / groupSize, n], actual: tensor.shape)
            }
        }
        try launchElementwise("nunchaku_encoder_awq_dequant_bf16", items: n * k / 8, stream: stream ?? weight.buffer.workStream,
                              arguments: [qweight.argument, scales.argument, zeros.argument, weight.argument,
                                          .int32(try OperandCheck.int32(n, op, "N")), .int32(try OperandCheck.int32(k, op, "K")),
                                          .int32(Int32(groupSize))])
    }
}
