import CUDABackend
import NunchakuCore
import SVDQuant

/// Builds the GPU layers of one model load: takes each layer's host weights from the source, uploads them once, and
/// lets them go, so host memory holds one layer at a time. The same names, specs and quantization roles as the CPU
/// model's `FluxLayerLoader`.
struct FluxCUDALayerLoader {
    let context: CUDAContext
    let layout: FluxCheckpointLayout
    let source: any FluxHostLinearSource
    let weights: WeightReader
    /// Every layer made, wrapped so LoRAs can reach it.
    let adaptable = FluxCUDAAdaptableLayers()
    /// Set for the fast W4A4 numerics.
    var fastEngine: CUDAW4A4FastEngine?

    func linear(_ spec: LinearLayerSpec) throws -> FluxCUDALinear {
        adaptable.register(
            try FluxCUDALinear(source.hostLinear(spec, weights: weights), spec: spec, context: context, fastEngine: fastEngine),
            name: spec.name, context: context)
    }

    /// An adaptive-norm linear (`width → chunks·width`), uploaded with its outputs chunk-major: the layout's
    /// interleaved layers (Nunchaku's) are reordered on the host.
    func modulation(_ name: String, width: Int, chunks: Int, layout: ModulationLayout) throws -> FluxCUDALinear {
        let spec = layout.spec(name: name, width: width, chunks: chunks)
        var host = try source.hostLinear(spec, weights: weights)
        if layout.interleaved { host = try host.chunkMajor(chunks: chunks, name: name) }
        return adaptable.register(try FluxCUDALinear(host, spec: spec, context: context, fastEngine: fastEngine),
                                  name: name, context: context)
    }

    /// A layer that is never quantized (embedders, final norm and projection).
    func linear(_ name: String, _ inFeatures: Int, _ outFeatures: Int) throws -> FluxCUDALinear {
        try linear(LinearLayerSpec(name: name, inFeatures: inFeatures, outFeatures: outFeatures))
    }

    /// A block projection, quantized the way the layout's SVDQuant checkpoints store it.
    func projection(_ name: String, _ inFeatures: Int, _ outFeatures: Int, inputFollowsGELU: Bool = false) throws -> FluxCUDALinear {
        try linear(LinearLayerSpec(
            name: name, inFeatures: inFeatures, outFeatures: outFeatures,
            quantization: layout.projectionQuantization(inputFollowsGELU: inputFollowsGELU)))
    }

    /// The query/key/value projection as one layer with output `q ‖ k ‖ v`: the fused layer itself, or three dense
    /// layers whose weights and biases are stacked at load (one GEMM instead of three).
    func qkv(_ names: QKVNames, width: Int) throws -> FluxCUDALinear {
        switch names {
        case let .fused(name):
            return try projection(name, width, 3 * width)
        case let .separate(query, key, value):
            var weights: [Tensor] = [], biases: [Tensor] = []
            for name in [query, key, value] {
                let spec = LinearLayerSpec(
                    name: name, inFeatures: width, outFeatures: width, quantization: layout.projectionQuantization(inputFollowsGELU: false))
                switch try source.hostLinear(spec, weights: self.weights) {
                case let .dense(weight, bias):
                    weights.append(weight.converted(to: .bf16))
                    biases.append(bias.converted(to: .bf16))
                case .unloaded:
                    return .unloaded(name)
                case .w4a4, .awq:
                    throw NunchakuError.unsupported(context: name, reason: "separate quantized q/k/v projections are not supported; SVDQuant checkpoints fuse them")
                }
            }
            let stacked = FluxCUDALinear.dense(try CUDADenseLinear(
                name: "\(query)+k+v", weight: try Self.stackRows(weights, name: query),
                bias: try Self.stackRows(biases, name: query), context: context))
            return adaptable.register(stacked, name: "\(query)+k+v", context: context)
        }
    }

    /// A `[count]` norm weight rounded to bf16 (as the CPU model holds it), uploaded as float32 for the kernel, with
    /// the bound of the heads it normalizes.
    func normWeight(_ name: String, _ count: Int) throws -> FluxCUDANormWeight {
        let weight = weights.tensor(name, shape: [count], dtypes: [.f32, .bf16, .f16, .f64])
        return try FluxCUDANormWeight(weight.converted(to: .bf16).converted(to: .f32), context: context)
    }

    /// Same-dtype tensors `[Nᵢ, …]` stacked along axis 0.
    static func stackRows(_ parts: [Tensor], name: String) throws -> Tensor {
        let trailing = Array(parts[0].shape.dropFirst())
        guard parts.allSatisfy({ Array($0.shape.dropFirst()) == trailing && $0.dtype == parts[0].dtype }) else {
            throw NunchakuError.invalidArgument(context: name, reason: "cannot stack \(parts.map(\.shape)) along rows")
        }
        let rows = parts.reduce(0) { $0 + $1.shape[0] }
        var stacked = Tensor(zeros: [rows] + trailing, dtype: parts[0].dtype)
        stacked.withUnsafeMutableBytes { destination in
            var offset = 0
            for part in parts {
                part.withUnsafeBytes { source in
                    destination.baseAddress!.advanced(by: offset).copyMemory(from: source.baseAddress!, byteCount: source.count)
                    offset += source.count
                }
            }
        }
        return stacked
    }
}
