import NunchakuCore

extension CUDAContext {
    /// `layerNorm(_:modulation:eps:into:stream:)` as the input of a fast W4A4 layer, in one kernel that writes the
    /// layer's activations instead of a 16-bit output: each modulated value is rounded to x's dtype exactly as the
    /// 16-bit output would store it, then quantized with `pass`'s operations (its smoothing, per-token e4m3, zero codes
    /// up to its depth; w4a4_fp8_quantize.cuh). The codes and scales are bit for bit those of `layerNorm` followed by
    /// the pass's own quantization, without the 16-bit tensor written and read back.
    ///
    /// `x` and `modulation` are as for `layerNorm`, with x's dtype the pass's and D its `inFeatures`; `result` holds
    /// codes u8 `[..., depth]` of B·S rows (`[B, S, depth]` keeps the tokens' shape for the layer's output) and
    /// scales f32 `[B·S]`, every byte written. Queued on `stream` (the input's stream when nil).
    /// - Throws: `NunchakuError` naming the operand for a wrong dtype, shape or width, and `.unsupported` for a
    ///   shifted pass (GELU-fed layers), before launching.
    public func layerNorm(_ x: DeviceTensor, modulation: AdaLNModulation? = nil, eps: Float = 1e-6, quantizedFor pass: W4A4FastInputPass,
                          into result: W4A4FastActivations, stream: CUDAStream? = nil) throws {
        let op = "layerNorm quantized for a fast W4A4 layer"
        let launch = try LayerNormLaunch(x, modulation: modulation, eps: eps, op)
        try OperandCheck.dtype(x, pass.type.dtype, op, "x")
        guard launch.width == pass.inFeatures else {
            throw NunchakuError.invalidArgument(context: "\(op) x \(x.shape)", reason: "rows of \(launch.width) values for a layer of K = \(pass.inFeatures)")
        }
        guard !pass.shifted else {
            throw NunchakuError.unsupported(context: op, reason: "the layer's activation pass adds 0.171875 before smoothing; the fused kernel has no shifted form")
        }
        let activations = try pass.matrix(result, rows: launch.rows, op)
        try OperandCheck.distinct(activations.codes, x, op)
        try OperandCheck.distinct(activations.scales, x, op)
        try launch.run("nunchaku_layernorm_fp8_quantize_\(launch.suffix)",
                       arguments: [x.argument] + launch.modulationArguments
                           + [pass.inverseSmooth.argument, activations.codes.argument, activations.scales.argument,
                              .int32(try OperandCheck.int32(pass.depth, op, "depth"))] + launch.rowArguments,
                       context: self, stream: stream ?? x.buffer.workStream)
    }

    /// `layerNorm(_:modulation:eps:quantizedFor:into:stream:)` into new codes u8 `[B, S, depth]` and scales f32 `[B·S]`
    /// allocated on the stream.
    public func layerNorm(_ x: DeviceTensor, modulation: AdaLNModulation? = nil, eps: Float = 1e-6, quantizedFor pass: W4A4FastInputPass,
                          stream: CUDAStream? = nil) throws -> W4A4FastActivations {
        try OperandCheck.rank(x, 3, "layerNorm quantized for a fast W4A4 layer", "x")
        let stream = stream ?? x.buffer.workStream
        let (batch, tokens) = (x.shape[0], x.shape[1])
        let result = (codes: try DeviceTensor(shape: [batch, tokens, pass.depth], dtype: .u8, context: self, stream: stream),
                      scales: try DeviceTensor(shape: [batch * tokens], dtype: .f32, context: self, stream: stream))
        try layerNorm(x, modulation: modulation, eps: eps, quantizedFor: pass, into: result, stream: stream)
        return result
    }
}
