import CPUBackend
import NunchakuCore

/// A plain linear layer on the CPU: `y = x · Wᵀ + b`, accumulated in fp32 and rounded once to the activation dtype
/// (like a cuBLAS GEMM with an fp32 accumulator and a bias epilogue).
struct DenseLinear: LinearLayer {
    let name: String
    let inFeatures: Int
    let outFeatures: Int
    /// Row-major `[outFeatures, inFeatures]`, holding values of the parameter dtype.
    let weight: [Float]
    /// `[outFeatures]`, or nil for a layer without bias.
    let bias: [Float]?

    /// A layer from a `[out, in]` weight and optional `[out]` bias in any float dtype, rounded to `parameterDType`.
    init(name: String, weight: Tensor, bias: Tensor?, parameterDType: DType) throws {
        guard weight.rank == 2 else {
            throw NunchakuError.invalidArgument(context: "\(name).weight", reason: "expected [out, in], got shape \(weight.shape)")
        }
        if let bias, bias.shape != [weight.shape[0]] {
            throw NunchakuError.shapeMismatch(context: "\(name).bias", expected: [weight.shape[0]], actual: bias.shape)
        }
        self.name = name
        self.outFeatures = weight.shape[0]
        self.inFeatures = weight.shape[1]
        self.weight = try Self.values(weight, parameterDType, "\(name).weight")
        self.bias = try bias.map { try Self.values($0, parameterDType, "\(name).bias") }
    }

    func forward(_ x: Tensor) throws -> Tensor {
        guard x.rank == 2, x.shape[1] == inFeatures else {
            throw NunchakuError.shapeMismatch(context: name, expected: [x.shape.first ?? 0, inFeatures], actual: x.shape)
        }
        let rows = x.shape[0]
        var output = Matmul.multiplyTransposed(try x.floatValues(context: name), weight, m: rows, n: outFeatures, k: inFeatures)
        if let bias {
            for row in 0..<rows {
                for column in 0..<outFeatures { output[row * outFeatures + column] += bias[column] }
            }
        }
        return Tensor.rounding(output, shape: [rows, outFeatures], to: x.dtype)
    }

    /// The tensor's values rounded to `dtype` (f32, bf16 or f16), as `Float`s.
    private static func values(_ tensor: Tensor, _ dtype: DType, _ context: String) throws -> [Float] {
        guard cpuActivationDTypes.contains(dtype) else {
            throw NunchakuError.dtypeMismatch(context: context, expected: cpuActivationDTypes, actual: dtype)
        }
        let widened = tensor.dtype == .f64 ? tensor.converted(to: .f32) : tensor
        let values = try widened.floatValues(context: context)
        return widened.dtype == dtype || dtype == .f32 ? values
            : try Tensor.rounding(values, shape: tensor.shape, to: dtype).floatValues(context: context)
    }
}

extension LinearLayer {
    /// Applies the layer to `[…, inFeatures]` activations of any rank ≥ 2, giving `[…, outFeatures]`, and checks that
    /// the layer kept the row count and the dtype.
    func applied(to x: Tensor) throws -> Tensor {
        guard x.rank >= 2, x.shape[x.rank - 1] == inFeatures else {
            throw NunchakuError.shapeMismatch(context: name, expected: Array(x.shape.dropLast()) + [inFeatures], actual: x.shape)
        }
        let leading = Array(x.shape.dropLast())
        let rows = leading.reduce(1, *)
        let output = try forward(x.reshaped([rows, inFeatures]))
        guard output.shape == [rows, outFeatures], output.dtype == x.dtype else {
            throw NunchakuError.invalidArgument(
                context: name, reason: "layer returned \(output.dtype) \(output.shape), expected \(x.dtype) \([rows, outFeatures])")
        }
        return try output.reshaped(leading + [outFeatures])
    }
}
