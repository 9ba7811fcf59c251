import CPUBackend
import NunchakuCore
import SVDQuant

/// The host weights of one linear layer, in the form the CUDA model uploads.
enum FluxHostLinear {
    /// `weight` [N, K] and `bias` [N] in any float dtype, output channels in natural order.
    case dense(weight: Tensor, bias: Tensor)
    /// An SVDQuant W4A4 layer (canonical layout, validated).
    case w4a4(SVDQW4A4Weights)
    /// An AWQ W4A16 layer (canonical layout, natural channel order, validated).
    case awq(AWQW4A16Weights)
    /// The layer's tensors had problems, which the `WeightReader` has recorded: the load fails at `finish()`.
    case unloaded
}

/// Where a model's linear layers come from: a checkpoint read through a factory, or a random-weight generator.
protocol FluxHostLinearSource: Sendable {
    /// The host weights of the layer `spec` describes. Tensors are taken through `weights`, which records problems.
    func hostLinear(_ spec: LinearLayerSpec, weights: WeightReader) throws -> FluxHostLinear
}

/// Linear layers read from a checkpoint. Dense layers (every layer of an unquantized checkpoint, and the unquantized
/// layers of an SVDQuant one) come straight from the reader, 16-bit as stored; quantized layers are built by the CPU
/// `factory` (`SVDQuantLinearFactory` in kernel-exact mode), whose validated weights are then taken over, so the
/// GPU runs exactly the weights the CPU reference runs.
struct FluxCheckpointLinears: FluxHostLinearSource {
    let factory: any LinearLayerFactory

    func hostLinear(_ spec: LinearLayerSpec, weights: WeightReader) throws -> FluxHostLinear {
        if spec.quantization == .none || factory is DenseLinearFactory {
            return try Self.dense(spec, weights: weights)
        }
        let layer = try factory.makeLinear(spec, computeDType: .bf16, weights: weights)
        switch layer {
        case let layer as SVDQW4A4Linear: return .w4a4(layer.weights)
        case let layer as AWQW4A16Linear: return .awq(layer.weights)
        case is UnloadedLinear: return .unloaded
        default:
            throw NunchakuError.unsupported(
                context: spec.name,
                reason: "the CUDA model runs SVDQuant layers with their kernels only; this layer came out as \(type(of: layer)) (dequantized mode?)")
        }
    }

    /// `<name>.weight` [N, K] and `<name>.bias` [N] in any float dtype, put back in natural channel order when the
    /// checkpoint interleaves them.
    static func dense(_ spec: LinearLayerSpec, weights: WeightReader) throws -> FluxHostLinear {
        let floatDTypes: [DType] = [.f32, .bf16, .f16, .f64]
        let problems = weights.problemCount
        var weight = weights.tensor("\(spec.name).weight", shape: [spec.outFeatures, spec.inFeatures], dtypes: floatDTypes)
        var bias = weights.tensor("\(spec.name).bias", shape: [spec.outFeatures], dtypes: floatDTypes)
        guard weights.problemCount == problems else { return .unloaded }
        if let interleave = spec.outputInterleave {
            weight = try OutputChannelOrder.natural(weight, interleave, context: "\(spec.name).weight")
            bias = try OutputChannelOrder.natural(bias, interleave, context: "\(spec.name).bias")
        }
        return .dense(weight: weight, bias: bias)
    }
}
