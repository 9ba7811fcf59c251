import CPUBackend
import NunchakuCore

/// An adaptive-norm linear (`norm1.linear`, `norm.linear`, `norm_out.linear`): maps `SiLU(temb)` `[B, D]` to S
/// per-sample chunks `[B, D]` (shift, scale, gate, …), in the order the block defines.
struct FluxModulation: Sendable {
    let linear: any LinearLayer
    let chunkCount: Int
    let layout: ModulationLayout

    /// Reads the layer `name` (`D → S·D`).
    init(name: String, width: Int, chunkCount: Int, layout: ModulationLayout, loader: FluxLayerLoader) throws {
        linear = try loader.linear(layout.spec(name: name, width: width, chunks: chunkCount))
        self.chunkCount = chunkCount
        self.layout = layout
    }

    /// The S chunks of `linear(conditioning)`, each `[B, D]` in the activation dtype.
    func chunks(_ conditioning: Tensor) throws -> [Tensor] {
        let output = try linear.applied(to: conditioning)
        let batch = output.shape[0], width = output.shape[1] / chunkCount
        if !layout.interleaved {
            return try CPUOps.splitLastDimension(output, sizes: Array(repeating: width, count: chunkCount))
        }
        let values = try output.floatValues(context: linear.name)
        return (0..<chunkCount).map { chunk in
            var picked = [Float](repeating: 0, count: batch * width)
            for sample in 0..<batch {
                for d in 0..<width { picked[sample * width + d] = values[sample * chunkCount * width + d * chunkCount + chunk] }
            }
            return Tensor.rounding(picked, shape: [batch, width], to: output.dtype)
        }
    }

    /// `x · (offset + scale) + shift` with this layer's scale offset.
    func modulate(_ x: Tensor, shift: Tensor, scale: Tensor) throws -> Tensor {
        try CPUOps.modulate(x, shift: shift, scale: scale, scaleOffset: layout.scaleOffset)
    }
}

/// The MLP of a block: `fc2(GELU_tanh(fc1(x)))` (`ff.net.0.proj` / `ff.net.2`, or `proj_mlp` with its output half).
struct FluxFeedForward: Sendable {
    let input: any LinearLayer
    let output: any LinearLayer

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        try output.applied(to: CPUOps.geluTanh(input.applied(to: x)))
    }
}

/// Builds layers and norm weights for one model load: the factory, the block layout, the compute dtype and the
/// strict reader together.
struct FluxLayerLoader {
    let factory: any LinearLayerFactory
    let layout: FluxCheckpointLayout
    let computeDType: DType
    let weights: WeightReader

    func linear(_ spec: LinearLayerSpec) throws -> any LinearLayer {
        try factory.makeLinear(spec, computeDType: computeDType, weights: weights)
    }

    /// A layer that is never quantized (embedders, final projection).
    func linear(_ name: String, _ inFeatures: Int, _ outFeatures: Int) throws -> any LinearLayer {
        try linear(LinearLayerSpec(name: name, inFeatures: inFeatures, outFeatures: outFeatures))
    }

    /// A block projection (QKV, attention output, MLP), quantized the way the layout's SVDQuant checkpoints do.
    func projection(_ name: String, _ inFeatures: Int, _ outFeatures: Int, inputFollowsGELU: Bool = false) throws -> any LinearLayer {
        try linear(LinearLayerSpec(
            name: name, inFeatures: inFeatures, outFeatures: outFeatures,
            quantization: layout.projectionQuantization(inputFollowsGELU: inputFollowsGELU)))
    }

    /// A `[count]` norm weight rounded to the compute dtype.
    func normWeight(_ name: String, _ count: Int) -> Tensor {
        weights.tensor(name, shape: [count], dtypes: [.f32, .bf16, .f16, .f64]).converted(to: computeDType)
    }
}
