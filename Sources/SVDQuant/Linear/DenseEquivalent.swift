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
        residual.withUnsafeMutableBufferPointer { residual in
            parallelFor(n) { row in
                let rowScale = codeUnit * Double(wtscale) * Double(channelScales[row])
                for column in 0..<k {
                    let scale = Double(scales[(column / groupSize) * n + row])
                    residual[row * k + column] = Float(Double(codes[row * k + column]) * scale * rowScale)
                }
            }
        }
        return residual
    }

    /// W_eff [N, K] row-major and the dense bias [N] (see `effectiveWeight()`, `effectiveBias()`), computed together.
    public func denseEquivalent() -> (weight: [Float], bias: [Float]) {
        let n = outFeatures, k = inFeatures
        let smooth = TensorValues.floats(canonical.smooth)
        var weight = dequantizedResidual()
        var bias = canonical.bias.map(TensorValues.floats) ?? [Float](repeating: 0, count: n)
        weight.withUnsafeMutableBufferPointer { weight in
            bias.withUnsafeMutableBufferPointer { bias in
                parallelFor(n) { row in
                    var shifted = 0.0
                    for column in 0..<k {
                        let index = row * k + column
                        shifted += Double(weight[index]) / Double(smooth[column])
                        weight[index] /= smooth[column]
                    }
                    // Unsigned layers quantize x + 0.171875, so the 4-bit path adds 0.171875 · Σ_k residual / smooth.
                    if actUnsigned { bias[row] = Float(Double(bias[row]) + Double(ActivationQuantizer.unsignedShift) * shifted) }
                }
            }
        }
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
        return (weight, bias)
    }

    /// W_eff [N, K] row-major: `dequantizedResidual / smooth[k] + proj_up · proj_downᵀ`.
    public func effectiveWeight() -> [Float] {
        denseEquivalent().weight
    }

    /// The bias of the dense equivalent, [N]: `bias`, plus for unsigned-activation layers the shift the kernel
    /// feeds through the 4-bit path only, `0.171875 · Σ_k residual[n][k] / smooth[k]`.
    public func effectiveBias() -> [Float] {
        denseEquivalent().bias
    }

    /// `x · W_effᵀ + effectiveBias` in fp32 for [..., K] activations of any float dtype; [M, N] row-major.
    /// - Throws: `NunchakuError` when `x` is not floating point or its last dimension is not K.
    public func denseForward(_ x: Tensor) throws -> [Float] {
        let rows = try LinearInput.rows(x, inFeatures: inFeatures, layer: name, allowed: [.f32, .bf16, .f16])
        let (weight, bias) = denseEquivalent()
        var output = Matmul.multiplyTransposed(TensorValues.floats(x), weight, m: rows, n: outFeatures, k: inFeatures)
        for index in output.indices { output[index] += bias[index % outFeatures] }
        return output
    }
}

extension AWQW4A16Weights {
    /// The dequantized weight [N, K] row-major, `q · wscales[k/64][n] + wzeros[k/64][n]` rounded once to fp32, in the
    /// canonical output-channel order.
    public func dequantizedWeight() -> [Float] {
        let n = outFeatures, k = inFeatures
        let scales = TensorValues.floats(canonical.wscales), zeros = TensorValues.floats(canonical.wzeros)
        var weight = [Float](repeating: 0, count: n * k)
        canonical.qweight.withUnsafeBytes { codes in
            weight.withUnsafeMutableBufferPointer { weight in
                parallelFor(n) { row in
                    for column in 0..<k {
                        let byte = codes[(row * k + column) / 2]
                        let code = Float(column % 2 == 0 ? byte & 0xF : byte >> 4)
                        let group = (column / groupSize) * n + row
                        weight[row * k + column] = zeros[group].addingProduct(code, scales[group])
                    }
                }
            }
        }
        return weight
    }
}
