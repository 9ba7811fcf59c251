import NunchakuCore

/// The FP8 GEMM epilogue's per-channel vectors: the scale (f32 [N]) and the bias ([N] in the layer's dtype, or none).
struct W4A4FastChannels {
    let scales: DeviceTensor
    let bias: DeviceTensor?
}

extension CUDASVDQW4A4FastLinear {
    /// `output ← output + gate ⊙ layer(x)` (FLUX's gated residual) for `output` [M, N] in the layer's dtype and a
    /// gate of one sample (`gate` resolves to N values of that dtype in a `[1, k·N]` table): the gate goes into
    /// the FP8 GEMM's per-channel scale and bias (w4a4_fp8_weights.cu, `w4a4_fp8_gated_channels`: a pass over N
    /// values), the old output into its C (beta 1), so the update costs no pass over [M, N] of its own and the sum
    /// is rounded once (a separate gated add rounds the layer's output first; the gated bias is rounded to the
    /// layer's dtype).
    /// - Throws: `NunchakuError` naming the layer when the gate is not one sample's N values in the layer's dtype,
    ///   or `x` / `output` have the wrong shape or dtype.
    public func forward(_ x: DeviceTensor, gate: ModulationChunk, accumulatingInto output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "\(name) fast W4A4 gated forward"
        let stream = stream ?? x.buffer.stream
        let gateVector = try gate.resolve(batch: 1, width: outFeatures, dtype: activationDType.dtype, op, "gate")
        let n = outFeatures
        let scales = try DeviceTensor(shape: [n], dtype: .f32, context: engine.context, stream: stream)
        let gatedBias = try bias.map { try DeviceTensor(shape: $0.shape, dtype: $0.dtype, context: engine.context, stream: stream) }
        try engine.context.kernels.kernel("w4a4_fp8_gated_channels_\(activationDType)").launch(
            grid: CUDADim3((n + 255) / 256), block: CUDADim3(256), stream: stream,
            arguments: [.pointer(gateVector.address), channelScales.argument, bias?.argument ?? .pointer(0), scales.argument,
                        gatedBias?.argument ?? .pointer(0), .int32(Int32(n))])
        try forward(x, gelu: false, accumulate: true, channels: W4A4FastChannels(scales: scales, bias: gatedBias), into: output,
                    stream: stream)
    }
}
