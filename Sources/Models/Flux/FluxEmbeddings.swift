import Foundation
import CPUBackend
import NunchakuCore

/// The conditioning vector `temb` `[B, D]` (diffusers' `CombinedTimestep(Guidance)TextProjEmbeddings`):
/// MLP(sinusoid(timestep)) [+ MLP(sinusoid(guidance))] + MLP(pooled text), each MLP `linear_2(SiLU(linear_1(·)))`.
struct FluxTimeTextEmbedding: Sendable {
    /// Width of the sinusoidal projection.
    static let sinusoidWidth = 256

    let timestep: FluxEmbeddingMLP
    let guidance: FluxEmbeddingMLP?
    let text: FluxEmbeddingMLP

    init(config: FluxConfig, loader: FluxLayerLoader) throws {
        let width = config.innerDim
        timestep = try FluxEmbeddingMLP(FluxTopLevelNames.timestepEmbedder, Self.sinusoidWidth, width, loader)
        guidance = config.guidanceEmbeds
            ? try FluxEmbeddingMLP(FluxTopLevelNames.guidanceEmbedder, Self.sinusoidWidth, width, loader) : nil
        text = try FluxEmbeddingMLP(FluxTopLevelNames.textEmbedder, config.pooledProjectionDim, width, loader)
    }

    /// `timestep` and `guidance` are `[B]` already scaled by 1000 and rounded to the compute dtype, `pooled` is
    /// `[B, P]` in the compute dtype. `guidance` must be given exactly when the model has a guidance embedder.
    func callAsFunction(timestep scaledTimestep: Tensor, guidance scaledGuidance: Tensor?, pooled: Tensor) throws -> Tensor {
        let dtype = pooled.dtype
        var embedding = try timestep(Self.sinusoid(scaledTimestep.floats(), dtype: dtype))
        if let guidance, let scaledGuidance {
            embedding = try CPUOps.add(embedding, guidance(Self.sinusoid(scaledGuidance.floats(), dtype: dtype)))
        }
        return try CPUOps.add(embedding, text(pooled))
    }

    /// diffusers' `get_timestep_embedding(v, 256, flip_sin_to_cos=True, downscale_freq_shift=0)` in fp32:
    /// frequencies `exp(−ln(10000)·k/128)`, output `[cos(v·f) | sin(v·f)]`, rounded to `dtype`.
    static func sinusoid(_ values: [Float], dtype: DType) -> Tensor {
        let half = sinusoidWidth / 2
        let frequencies = (0..<half).map { k in Foundation.exp(Float(-Foundation.log(10000.0)) * Float(k) / Float(half)) }
        var output = [Float](repeating: 0, count: values.count * sinusoidWidth)
        for (row, value) in values.enumerated() {
            for (k, frequency) in frequencies.enumerated() {
                let angle = value * frequency
                output[row * sinusoidWidth + k] = Foundation.cos(angle)
                output[row * sinusoidWidth + half + k] = Foundation.sin(angle)
            }
        }
        return Tensor.rounding(output, shape: [values.count, sinusoidWidth], to: dtype)
    }
}

/// `linear_2(SiLU(linear_1(x)))`, the shape of `TimestepEmbedding` and `PixArtAlphaTextProjection`.
struct FluxEmbeddingMLP: Sendable {
    let first: any LinearLayer
    let second: any LinearLayer

    init(_ prefix: String, _ inFeatures: Int, _ width: Int, _ loader: FluxLayerLoader) throws {
        first = try loader.linear("\(prefix).linear_1", inFeatures, width)
        second = try loader.linear("\(prefix).linear_2", width, width)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        try second.applied(to: CPUOps.silu(first.applied(to: x)))
    }
}
