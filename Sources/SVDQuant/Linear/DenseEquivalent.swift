import CPUBackend
import NunchakuCore

/// The dense layer a W4A4 layer stands for (research/nunchaku-internals.md §2.9): an independent reference that
/// skips activation quantization and every 16-bit rounding, and a route to dense (BF16) checkpoints.
extension SVDQW4A4Weights {
    /// The dequantized 4-bit weight in the smoothed input space, [N, K] row-major:
    /// `code · wscale[k/G][n] (· wtscale · wcscales[n])`, INT4 codes as integers, NVFP4 codes as E2M1 values.
    public func dequantizedResidual() -> [Float] {
        let n = outFeatures, k = inFeatures
        let codes = W4A4GEMM.decode(canonical.qweight, count: n * k, table: W4A4GEMM.table(precision, signed: true))
        let codeUnit: Double = precision == .int4 ? 1 : 0.5  // NVFP4 codes decode to twice their value
        let scales = TensorValues.floats(canonical.wscales)
        let channelScales = canonical.wcscales.map(TensorValues.floats) ?? [Float](repeating: 1, count: n)
        var residual = [Float](repeating: 0, count: n * k)
        for row in 0..<n {
            let rowScale = codeUnit * Double(wtscale) * Double(channelScales[row])
            for column in 0..<k {
                let scale = Double(scales[(column / groupSize) * n + row])
                residual[row * k + column] = Float(Double(codes[row * k + column]) * scale * rowScale)
            }
        }
        return residual
    }

    /// W_eff [N, K] row-major: `dequantizedResidual / smooth[k] + proj_up · proj_downᵀ`.
    public func effectiveWeight() -> [Float] {
        let n = outFeatures, k = inFeatures
        let smooth = TensorValues.floats(canonical.smooth)
        var weight = dequantizedResidual()
        for index in weight.indices { weight[index] /= smooth[index % k] }
        if rank > 0 {
            let up = TensorValues.floats(canonical.projUp), down = TensorValues.floats(canonical.projDown)
            up.withUnsafeBufferPointer { a in
                down.withUnsafeBufferPointer { b in
                    weight.withUnsafeMutableBufferPointer { c in
                        Matmul.multiplyTransposed(a.baseAddress!, b.baseAddress!, into: c.baseAddress!, m: n, n: k, k: rank, accumulate: true)
                    }
                }
            }
        }
        return weight
    }

    /// The bias of the dense equivalent, [N]: `bias`, plus for unsigned-activation layers the shift the kernel
    /// feeds through the 4-bit path only, `0.171875 · Σ_k residual[n][k] / smooth[k]`.
    public func effectiveBias() -> [Float] {
        var bias = canonical.bias.map(TensorValues.floats) ?? [Float](repeating: 0, count: outFeatures)
        guard actUnsigned else { return bias }
        let k = inFeatures
        let smooth = TensorValues.floats(canonical.smooth)
        let residual = dequantizedResidual()
        for row in 0..<outFeatures {
            var sum = 0.0
            for column in 0..<k { sum += Double(residual[row * k + column]) / Double(smooth[column]) }
            bias[row] = Float(Double(bias[row]) + Double(ActivationQuantizer.unsignedShift) * sum)
        }
        return bias
    }

    /// `x · W_effᵀ + effectiveBias` in fp32 for [..., K] activations of any float dtype; [M, N] row-major.
    /// - Throws: `NunchakuError` when `x` is not floating point or its last dimension is not K.
    public func denseForward(_ x: Tensor) throws -> [Float] {
        let rows = try LinearInput.rows(x, inFeatures: inFeatures, layer: name, allowed: [.f32, .bf16, .f16])
        var output = Matmul.multiplyTransposed(TensorValues.floats(x), effectiveWeight(), m: rows, n: outFeatures, k: inFeatures)
        let bias = effectiveBias()
        for index in output.indices { output[index] += bias[index % outFeatures] }
        return output
    }
}
