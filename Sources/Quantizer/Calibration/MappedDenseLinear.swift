import CPUBackend
import Models
import NunchakuCore

/// A plain linear (`y = x · Wᵀ + b`, weights rounded to the compute dtype, fp32 accumulation, one rounding to the
/// activation dtype: the numerics of Models' dense layers) that keeps its weight in the memory-mapped checkpoint and
/// widens it to `Float` only for the length of one forward. A whole 12B model can run this way in a few GiB.
struct MappedDenseLinear: LinearLayer {
    let name: String
    let inFeatures: Int
    let outFeatures: Int
    /// [out, in], usually a view into the checkpoint's mapping.
    let weight: Tensor
    let bias: Tensor
    let parameterDType: DType

    func forward(_ x: Tensor) throws -> Tensor {
        guard x.rank == 2, x.shape[1] == inFeatures else {
            throw NunchakuError.shapeMismatch(context: name, expected: [x.shape.first ?? 0, inFeatures], actual: x.shape)
        }
        let rows = x.shape[0]
        var output = Matmul.multiplyTransposed(
            try x.floatValues(context: name), try parameters(weight), m: rows, n: outFeatures, k: inFeatures)
        let biasValues = try parameters(bias)
        for index in output.indices { output[index] += biasValues[index % outFeatures] }
        return Tensor.rounding(output, shape: [rows, outFeatures], to: x.dtype)
    }

    /// The tensor's values rounded to the parameter dtype.
    private func parameters(_ tensor: Tensor) throws -> [Float] {
        let values = try tensor.floatValues(context: name)
        if tensor.dtype == parameterDType || parameterDType == .f32 { return values }
        return try Tensor.rounding(values, shape: tensor.shape, to: parameterDType).floatValues(context: name)
    }
}

/// Builds `MappedDenseLinear`s from `<name>.weight` [out, in] and `<name>.bias` [out] in any float dtype (outputs in
/// the checkpoint's channel order, like every `LinearLayerFactory`).
struct MappedDenseLinearFactory: LinearLayerFactory {
    func makeLinear(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        let floats: [DType] = [.f32, .bf16, .f16]
        let (n, k) = (spec.outFeatures, spec.inFeatures)
        return MappedDenseLinear(
            name: spec.name, inFeatures: k, outFeatures: n,
            weight: weights.tensor("\(spec.name).weight", shape: [n, k], dtypes: floats),
            bias: weights.tensor("\(spec.name).bias", shape: [n], dtypes: floats), parameterDType: computeDType)
    }
}
