import CUDABackend
import NunchakuCore
import SVDQuant

/// A single block's `mlp_fc1` and `qkv_proj` running on one fast W4A4 activation pass (`CUDAW4A4FastSharedInput`:
/// the block's normalized tokens quantized once — by the LayerNorm kernel itself while the engine's
/// `quantizesInNorms` is on —, then both FP8 GEMMs). While a LoRA branch is on either
/// layer, or the engine's `sharesInputPasses` is off, it steps aside and the block runs them separately (the same
/// codes, each quantized by its own layer).
struct FluxCUDASharedInput: Sendable {
    /// The layers `[mlp_fc1, qkv_proj]`, in the order of their GEMMs.
    let pass: CUDAW4A4FastSharedInput
    /// The same two layers as the model holds them (LoRA targets).
    let layers: [FluxCUDAAdaptableLinear]

    /// Whether the block runs the two layers on the shared pass now: no LoRA branch is on either layer and the
    /// engine shares input passes.
    var isInUse: Bool { pass.layers[0].engine.sharesInputPasses && !layers.contains(where: \.hasBranch) }

    /// `(GELU(mlp_fc1(x)), qkv_proj(x))` for `x` `[B, S, D]`: 16-bit values, or activations quantized with the
    /// shared pass (`pass.inputPass`).
    func callAsFunction(_ x: W4A4FastInput) throws -> (mlp: DeviceTensor, qkv: DeviceTensor) {
        let gelu = [true, false]
        let outputs = switch x {
        case let .values(values): try pass.forward(values, gelu: gelu)
        case let .quantized(activations): try pass.forward(quantized: activations, gelu: gelu)
        }
        return (outputs[0], outputs[1])
    }
}

extension FluxCUDALayerLoader {
    /// A single block's QKV projection and MLP input layer. With the fast numerics, a fused SVDQuant `qkv_proj`
    /// and an SVDQuant `mlp_fc1` whose smoothing factors are the same bit for bit (DeepCompressor's checkpoints;
    /// `CUDAW4A4FastSharedInput.canShare(_:type:)` decides) are made to share their activation pass;
    /// otherwise each layer is made alone, as `qkv(_:width:)` and `projection` make them.
    func singleBlockInputs(qkv names: QKVNames, mlpIn: String, width: Int, hidden: Int) throws
        -> (qkv: FluxCUDALinear, mlpIn: FluxCUDALinear, shared: FluxCUDASharedInput?) {
        guard case let .fused(qkvName) = names, fastEngine != nil else {
            return (try qkv(names, width: width), try projection(mlpIn, width, hidden), nil)
        }
        let quantization = layout.projectionQuantization(inputFollowsGELU: false)
        let specs = [LinearLayerSpec(name: mlpIn, inFeatures: width, outFeatures: hidden, quantization: quantization),
                     LinearLayerSpec(name: qkvName, inFeatures: width, outFeatures: 3 * width, quantization: quantization)]
        let hosts = try specs.map { try source.hostLinear($0, weights: weights) }
        let quantized = hosts.compactMap { host -> SVDQW4A4Weights? in
            if case let .w4a4(weights) = host { return weights }
            return nil
        }
        let shares = quantized.count == 2 && CUDAW4A4FastSharedInput.canShare(quantized, type: .bf16)
        let layers = try zip(hosts, specs).map { host, spec in
            adaptable.register(try FluxCUDALinear(host, spec: spec, context: context, fastEngine: fastEngine), name: spec.name, context: context)
        }
        return (layers[1], layers[0], shares ? try Self.sharedInput(layers) : nil)
    }

    /// The shared pass of `layers` (adaptable fast W4A4 layers; nil for others).
    private static func sharedInput(_ layers: [FluxCUDALinear]) throws -> FluxCUDASharedInput? {
        var adaptable: [FluxCUDAAdaptableLinear] = [], fast: [CUDASVDQW4A4FastLinear] = []
        for layer in layers {
            guard case let .adaptable(wrapper) = layer, case let .w4a4Fast(base) = wrapper.base else { return nil }
            adaptable.append(wrapper)
            fast.append(base)
        }
        return FluxCUDASharedInput(pass: try CUDAW4A4FastSharedInput(fast), layers: adaptable)
    }
}
