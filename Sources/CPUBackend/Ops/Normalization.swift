import NunchakuCore

/// Reference CPU operations on `Tensor`s. Each op validates its operands (typed errors naming the op and the
/// operand), computes in `Float` or `Double`, and rounds its output once to the dtype of its main input
/// (f32, bf16 or f16), the way a fused GPU kernel writing that dtype would.
public enum CPUOps {}

extension CPUOps {
    /// Layer normalization over the last dimension: `(x − mean) / sqrt(var + eps)`, then `· weight + bias` when given.
    ///
    /// Mean and (biased) variance are accumulated in `Double`. `weight` and `bias` are `[D]` in any float dtype.
    public static func layerNorm(_ x: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-6) throws -> Tensor {
        let context = "layerNorm"
        try OpCheck.activation(x, context)
        let width = try OpCheck.lastDimension(x, context)
        let gamma = try weight.map { try vector($0, width, "\(context) weight") }
        let beta = try bias.map { try vector($0, width, "\(context) bias") }
        let input = try x.floatValues(context: context)
        var output = [Float](repeating: 0, count: input.count)
        input.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { output in
                parallelRows(input.count / width) { rows in
                    for row in rows {
                        let start = row * width
                        var sum = 0.0
                        for i in start..<(start + width) { sum += Double(input[i]) }
                        let mean = sum / Double(width)
                        var squares = 0.0
                        for i in start..<(start + width) {
                            let centered = Double(input[i]) - mean
                            squares += centered * centered
                        }
                        let inverseDeviation = 1 / (squares / Double(width) + Double(eps)).squareRoot()
                        for i in 0..<width {
                            var value = (Double(input[start + i]) - mean) * inverseDeviation
                            if let gamma { value *= Double(gamma[i]) }
                            if let beta { value += Double(beta[i]) }
                            output[start + i] = Float(value)
                        }
                    }
                }
            }
        }
        return Tensor.rounding(output, shape: x.shape, to: x.dtype)
    }

    /// RMS normalization over the last dimension, as `torch.nn.RMSNorm`: `x · rsqrt(mean(x²) + eps) · weight`.
    ///
    /// The mean of squares is accumulated in `Double`. `weight` is `[D]` in any float dtype.
    public static func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float = 1e-6) throws -> Tensor {
        let context = "rmsNorm"
        try OpCheck.activation(x, context)
        let width = try OpCheck.lastDimension(x, context)
        let gamma = try vector(weight, width, "\(context) weight")
        let input = try x.floatValues(context: context)
        var output = [Float](repeating: 0, count: input.count)
        input.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { output in
                parallelRows(input.count / width, minimumRowsPerChunk: 64) { rows in
                    for row in rows {
                        let start = row * width
                        var squares = 0.0
                        for i in start..<(start + width) { squares += Double(input[i]) * Double(input[i]) }
                        let inverseRMS = 1 / (squares / Double(width) + Double(eps)).squareRoot()
                        for i in 0..<width {
                            output[start + i] = Float(Double(input[start + i]) * inverseRMS * Double(gamma[i]))
                        }
                    }
                }
            }
        }
        return Tensor.rounding(output, shape: x.shape, to: x.dtype)
    }

    /// The values of a parameter vector that must be `[count]`, in any float dtype.
    static func vector(_ tensor: Tensor, _ count: Int, _ context: String) throws -> [Float] {
        try OpCheck.shape(tensor, [count], context)
        guard tensor.dtype.isFloatingPoint else {
            throw NunchakuError.dtypeMismatch(context: context, expected: cpuActivationDTypes, actual: tensor.dtype)
        }
        return tensor.floats()
    }
}
