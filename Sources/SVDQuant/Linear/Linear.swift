import CPUBackend
import NunchakuCore

/// A plain dense linear (the unquantized layers of a checkpoint): `y = x · Wᵀ + b` with the weight converted to
/// fp32 once at construction, fp32 accumulation, the bias added in fp32, and the result rounded once to the
/// activation dtype (as a cuBLAS BF16 GEMM with a bias epilogue does).
public struct Linear: LinearLayer {
    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    /// [N, K] row-major.
    private let weight: [Float]
    private let bias: [Float]?

    /// - Parameters:
    ///   - weight: [N, K] in bf16, f16 or f32.
    ///   - bias: [N] in bf16, f16 or f32, or nil.
    /// - Throws: `NunchakuError` naming `name.weight`/`name.bias` for a wrong shape or dtype or a non-finite value.
    public init(name: String, weight: Tensor, bias: Tensor?) throws {
        let floats: [DType] = [.bf16, .f16, .f32]
        try LayoutCheck.dtype(weight, floats, "\(name).weight")
        let (n, k) = try LayoutCheck.matrix(weight, "\(name).weight")
        try WeightValidation.finite(weight, "\(name).weight")
        if let bias {
            try LayoutCheck.dtype(bias, floats, "\(name).bias")
            try LayoutCheck.shape(bias, [n], "\(name).bias")
            try WeightValidation.finite(bias, "\(name).bias")
        }
        self.name = name
        self.inFeatures = k
        self.outFeatures = n
        self.weight = TensorValues.floats(weight)
        self.bias = bias.map(TensorValues.floats)
    }

    /// `x` is [..., K] in f32, bf16 or f16; the result has `x`'s dtype.
    public func forward(_ x: Tensor) throws -> Tensor {
        let rows = try LinearInput.rows(x, inFeatures: inFeatures, layer: name, allowed: [.f32, .bf16, .f16])
        var output = Matmul.multiplyTransposed(TensorValues.floats(x), weight, m: rows, n: outFeatures, k: inFeatures)
        if let bias {
            for index in output.indices { output[index] += bias[index % outFeatures] }
        }
        return TensorValues.tensor(output, shape: LinearInput.outputShape(x, outFeatures: outFeatures), dtype: x.dtype)
    }
}
