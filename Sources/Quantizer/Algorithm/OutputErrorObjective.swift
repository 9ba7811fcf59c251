import CPUBackend

/// The low-rank branch in smoothed coordinates: `L_s = up · downᵀ` approximates the smoothed weight `W·diag(s)`.
struct SmoothedLowRank {
    let rank: Int
    /// [N, rank] = U·Σ.
    let up: [Float]
    /// [K, rank] = V (applies to the smoothed input x/s).
    let down: [Float]

    init(_ svd: TruncatedSVD) {
        rank = svd.rank
        down = svd.v
        var up = svd.u
        for row in 0..<svd.rows {
            for j in 0..<rank { up[row * rank + j] *= svd.singularValues[j] }
        }
        self.up = up
    }

    /// `up · downᵀ`, [N, K].
    func effectiveWeight(rows: Int, columns: Int) -> [Float] {
        Matmul.multiplyTransposed(up, down, m: rows, n: columns, k: rank)
    }
}

/// What the quantizer minimizes: the relative error of the layer's output, simulated as the runtime computes it.
///
/// With calibration activations X (already shifted for post-GELU INT4 layers) and x̂ = X / s:
/// `‖Qa(x̂)·Q(R)ᵀ + x̂·downᵀ·upᵀ − X·Wᵀ‖_F / ‖X·Wᵀ‖_F`, where R = W·diag(s) − L_s is the residual and Q, Qa the
/// weight and activation fake quantizers. Without activations: `‖(Q(R) − R)·diag(1/s)‖_F / ‖W‖_F`, the output
/// error for identity inputs left unquantized (nothing is known about them).
struct OutputErrorObjective {
    let outFeatures: Int
    let inFeatures: Int
    let activationQuantizer: ActivationQuantizer
    /// Row-major [rows, K] objective inputs (shifted when the layer's input is shifted), or nil for weights only.
    let inputs: [Float]?
    let rows: Int
    /// X·Wᵀ, [rows, N].
    private let reference: [Float]
    /// ‖X·Wᵀ‖_F (‖W‖_F without inputs): what the relative error is relative to.
    let referenceNorm: Double

    init(weight: [Float], outFeatures: Int, inFeatures: Int, activationQuantizer: ActivationQuantizer, inputs: [Float]?) {
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.activationQuantizer = activationQuantizer
        self.inputs = inputs
        if let inputs {
            rows = inputs.count / inFeatures
            reference = Matmul.multiplyTransposed(inputs, weight, m: rows, n: outFeatures, k: inFeatures)
        } else {
            rows = 0
            reference = weight
        }
        referenceNorm = reference.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }

    /// The relative output error for smoothing `smooth`, residual `residual` (smoothed coordinates) and its fake
    /// quantization `quantizedResidual`, with the low-rank branch `lowRank` (nil when there is none).
    func relativeError(
        smooth: [Float], residual: [Float], quantizedResidual: [Float], lowRank: SmoothedLowRank?
    ) throws -> Double {
        guard let inputs else {
            var sum = 0.0
            for row in 0..<outFeatures {
                for column in 0..<inFeatures {
                    let index = row * inFeatures + column
                    let delta = Double(quantizedResidual[index] - residual[index]) / Double(smooth[column])
                    sum += delta * delta
                }
            }
            return relative(sum.squareRoot())
        }
        var smoothed = inputs
        for row in 0..<rows {
            for column in 0..<inFeatures { smoothed[row * inFeatures + column] /= smooth[column] }
        }
        let quantizedInputs = try activationQuantizer.fakeQuantize(smoothed, rows: rows, columns: inFeatures)
        var output = [Float](repeating: 0, count: rows * outFeatures)
        quantizedInputs.withUnsafeBufferPointer { x in
            quantizedResidual.withUnsafeBufferPointer { w in
                output.withUnsafeMutableBufferPointer { out in
                    Matmul.multiplyTransposed(x.baseAddress!, w.baseAddress!, into: out.baseAddress!,
                                              m: rows, n: outFeatures, k: inFeatures)
                }
            }
        }
        if let lowRank, lowRank.rank > 0 {
            let downTransposed = Matmul.transpose(lowRank.down, rows: inFeatures, columns: lowRank.rank)
            let projected = Matmul.multiplyTransposed(smoothed, downTransposed, m: rows, n: lowRank.rank, k: inFeatures)
            projected.withUnsafeBufferPointer { t in
                lowRank.up.withUnsafeBufferPointer { up in
                    output.withUnsafeMutableBufferPointer { out in
                        Matmul.multiplyTransposed(t.baseAddress!, up.baseAddress!, into: out.baseAddress!,
                                                  m: rows, n: outFeatures, k: lowRank.rank, accumulate: true)
                    }
                }
            }
        }
        var sum = 0.0
        for index in output.indices {
            let delta = Double(output[index]) - Double(reference[index])
            sum += delta * delta
        }
        return relative(sum.squareRoot())
    }

    private func relative(_ norm: Double) -> Double {
        referenceNorm > 0 ? norm / referenceNorm : norm
    }
}
