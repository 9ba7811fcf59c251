import CPUBackend
import NunchakuCore
import SVDQuant

/// The CPU reference of a random SVDQuant checkpoint without activation quantization: its dense layers as they are,
/// its W4A4 and AWQ layers as the dense layers they stand for (what `SVDQuantLinearFactory`'s dequantized mode
/// gives a checkpoint on disk). The error of either W4A4 numerics (exact, fast) against it is their quantization
/// error end to end.
public struct FluxRandomDenseReference: LinearLayerFactory {
    public let checkpoint: FluxRandomCheckpoint

    public init(checkpoint: FluxRandomCheckpoint) {
        self.checkpoint = checkpoint
    }

    public func makeLinear(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        switch try checkpoint.hostLinear(spec) {
        case let .dense(weight, bias):
            return try DenseLinear(name: spec.name, weight: weight, bias: bias, parameterDType: computeDType)
        case let .w4a4(layer):
            return try SVDQuantLinearFactory.denseEquivalent(layer, computeDType)
        case let .awq(layer):
            return try SVDQuantLinearFactory.denseEquivalent(layer, computeDType)
        case .unloaded:
            return UnloadedLinear(spec)
        }
    }
}

extension FluxTransformer {
    /// The dense-equivalent CPU model of a random-weight checkpoint (`FluxRandomDenseReference`), in any dtype.
    public init(denseEquivalentOf checkpoint: FluxRandomCheckpoint, computeDType: DType = .bf16) throws {
        try self.init(
            config: checkpoint.config, weights: checkpoint.tensors, layout: checkpoint.layout, computeDType: computeDType,
            linearFactory: FluxRandomDenseReference(checkpoint: checkpoint),
            source: "random \(checkpoint.format) FLUX, dense equivalent (seed \(checkpoint.seed))")
    }
}
