import CPUBackend
import NunchakuCore
import SVDQuant

/// The factory for SVDQuant checkpoints (any container `SVDQuantCheckpoint` opens): `.w4a4` layers from its W4A4
/// weights, `.awqW4A16` layers from its AWQ weights (outputs in the file's channel order: Nunchaku's adaLN layers stay
/// interleaved, with the folded +1), `.none` layers as plain dense ones from its other tensors.
///
/// Read weights through `SVDQuantModelTensors(checkpoint)`, where each quantized layer appears as one entry under
/// its name, so a strict load reports layers the model lacks or does not use like tensors.
public struct SVDQuantLinearFactory: LinearLayerFactory {
    /// How quantized layers compute.
    public enum Mode: String, Sendable, CaseIterable {
        /// Nunchaku's kernel numerics step by step (`SVDQW4A4Linear`, `AWQW4A16Linear`): 4-bit activations,
        /// bf16/f16 activations only.
        case kernelExact
        /// The dense layers the quantized ones stand for (`SVDQW4A4Weights.denseEquivalent()`, AWQ
        /// `dequantizedWeight()`), without activation quantization, in any compute dtype: a reference.
        case dequantized
    }

    public let checkpoint: SVDQuantCheckpoint
    public let mode: Mode

    public init(checkpoint: SVDQuantCheckpoint, mode: Mode = .kernelExact) {
        self.checkpoint = checkpoint
        self.mode = mode
    }

    public func makeLinear(_ spec: LinearLayerSpec, computeDType: DType, weights: WeightReader) throws -> any LinearLayer {
        let wanted: SVDQuantLayerKind, build: () throws -> any LinearLayer
        switch spec.quantization {
        case .none:
            return try DenseLinearFactory().makeLinear(spec, computeDType: computeDType, weights: weights)
        case let .w4a4(inputFollowsGELU):
            wanted = .w4a4
            build = { try w4a4(spec.name, actUnsigned: inputFollowsGELU && checkpoint.precision == .int4, computeDType) }
        case .awqW4A16:
            wanted = .awq
            build = { try awq(spec.name, computeDType) }
        }
        if mode == .kernelExact, ActivationDType(computeDType) == nil {
            throw NunchakuError.unsupported(
                context: spec.name,
                reason: "SVDQuant layers quantize bf16 or f16 activations, not \(computeDType); compute in bf16, or use the dequantized mode")
        }
        guard weights.claim(spec.name) else { return UnloadedLinear(spec) }
        do {
            let kind = checkpoint.kind(ofLayer: spec.name)
            guard kind == wanted else {
                throw NunchakuError.invalidArgument(
                    context: spec.name, reason: "is \(Self.describe(kind)) in the checkpoint; the model needs \(Self.describe(wanted))")
            }
            let layer = try build()
            guard layer.inFeatures == spec.inFeatures, layer.outFeatures == spec.outFeatures else {
                throw NunchakuError.invalidArgument(
                    context: spec.name,
                    reason: "maps \(layer.inFeatures) → \(layer.outFeatures) features; the model needs \(spec.inFeatures) → \(spec.outFeatures)")
            }
            return layer
        } catch {
            weights.reject(spec.name, reason: "\(error)")
            return UnloadedLinear(spec)
        }
    }

    private static func describe(_ kind: SVDQuantLayerKind?) -> String {
        switch kind {
        case .w4a4: "an SVDQuant W4A4 layer"
        case .awq: "an AWQ W4A16 layer"
        case .dense: "a dense layer"
        case nil: "no layer"
        }
    }

    private func w4a4(_ name: String, actUnsigned: Bool, _ computeDType: DType) throws -> any LinearLayer {
        let layer = try checkpoint.w4a4Weights(name, actUnsigned: actUnsigned)
        guard mode == .dequantized else { return SVDQW4A4Linear(weights: layer) }
        return try Self.denseEquivalent(layer, computeDType)
    }

    private func awq(_ name: String, _ computeDType: DType) throws -> any LinearLayer {
        let layer = try checkpoint.awqWeights(name)
        guard mode == .dequantized else { return AWQW4A16Linear(weights: layer) }
        return try Self.denseEquivalent(layer, computeDType)
    }

    /// The dense layer a W4A4 layer stands for (`SVDQW4A4Weights.denseEquivalent()`), parameters in `computeDType`.
    static func denseEquivalent(_ layer: SVDQW4A4Weights, _ computeDType: DType) throws -> DenseLinear {
        let (weight, bias) = layer.denseEquivalent()
        return try DenseLinear(
            name: layer.name, weight: Tensor(weight, shape: [layer.outFeatures, layer.inFeatures]),
            bias: Tensor(bias, shape: [layer.outFeatures]), parameterDType: computeDType)
    }

    /// The dense layer an AWQ W4A16 layer stands for (its dequantized weight and its bias).
    static func denseEquivalent(_ layer: AWQW4A16Weights, _ computeDType: DType) throws -> DenseLinear {
        try DenseLinear(
            name: layer.name, weight: Tensor(layer.dequantizedWeight(), shape: [layer.outFeatures, layer.inFeatures]),
            bias: layer.canonical.bias, parameterDType: computeDType)
    }
}

/// What a model reads from an SVDQuant checkpoint: every tensor outside the quantized layers by engine name, plus one
/// entry per quantized layer under the layer's name (taken whole by `SVDQuantLinearFactory`, never read as a tensor).
public struct SVDQuantModelTensors: TensorProvider, Sendable {
    public let checkpoint: SVDQuantCheckpoint

    public init(_ checkpoint: SVDQuantCheckpoint) {
        self.checkpoint = checkpoint
    }

    public var tensorNames: [String] {
        checkpoint.denseTensorNames + checkpoint.w4a4LayerNames + checkpoint.awqLayerNames
    }

    public func tensor(named name: String) throws -> Tensor {
        guard checkpoint.kind(ofLayer: name) != .w4a4, checkpoint.kind(ofLayer: name) != .awq else {
            throw NunchakuError.invalidArgument(context: name, reason: "is a quantized layer, not a tensor")
        }
        return try checkpoint.denseTensor(name)
    }
}
