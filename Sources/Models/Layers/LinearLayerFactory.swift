import CPUBackend
import NunchakuCore

/// Builds the linear layers of a model from checkpoint tensors. Models ask a factory for every linear, so a
/// quantized factory (SVDQuant W4A4, AWQ W4A16) can replace the plain one without touching the model code.
public protocol LinearLayerFactory: Sendable {
    /// The layer `spec` describes, for activations of `computeDType`. Tensors are taken through `weights`, which
    /// records problems
    /// instead of throwing so that one load reports them all; a factory that meets a problem records it there (so
    /// the load fails at `WeightReader.finish()`) and returns any stand-in to let loading go on.
    func makeLinear(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer
}

/// The factory for unquantized checkpoints: `<name>.weight` `[out, in]` and `<name>.bias` `[out]` in any float dtype,
/// rounded to the compute dtype (as `model.to(dtype)` does) and held as `DenseLinear`s.
public struct DenseLinearFactory: LinearLayerFactory {
    public init() {}

    public func makeLinear(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        let floatDTypes: [DType] = [.f32, .bf16, .f16, .f64]
        let weight = weights.tensor("\(spec.name).weight", shape: [spec.outFeatures, spec.inFeatures], dtypes: floatDTypes)
        let bias = weights.tensor("\(spec.name).bias", shape: [spec.outFeatures], dtypes: floatDTypes)
        return try DenseLinear(name: spec.name, weight: weight, bias: bias, parameterDType: computeDType)
    }
}
