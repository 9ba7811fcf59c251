import CUDABackend
import NunchakuCore

/// `temb` `[B, D]` on the GPU (`FluxTimeTextEmbedding` is the CPU reference): MLP(sinusoid(timestep))
/// [+ MLP(sinusoid(guidance))] + MLP(pooled text). The sinusoids are computed on the host (`FluxCUDAInputs`).
struct FluxCUDATimeTextEmbedding: Sendable {
    let timestep: FluxCUDAEmbeddingMLP
    let guidance: FluxCUDAEmbeddingMLP?
    let text: FluxCUDAEmbeddingMLP

    init(config: FluxConfig, loader: FluxCUDALayerLoader) throws {
        let width = config.innerDim, sinusoid = FluxTimeTextEmbedding.sinusoidWidth
        timestep = try FluxCUDAEmbeddingMLP(FluxTopLevelNames.timestepEmbedder, sinusoid, width, loader)
        guidance = config.guidanceEmbeds
            ? try FluxCUDAEmbeddingMLP(FluxTopLevelNames.guidanceEmbedder, sinusoid, width, loader) : nil
        text = try FluxCUDAEmbeddingMLP(FluxTopLevelNames.textEmbedder, config.pooledProjectionDim, width, loader)
    }

    /// `temb` for the inputs' timestep and guidance sinusoids and pooled text embedding.
    func callAsFunction(_ inputs: FluxCUDAInputs, _ ops: FluxCUDAOps) throws -> DeviceTensor {
        let embedding = try timestep(inputs.timestepSinusoid, ops)
        if let guidance, let sinusoid = inputs.guidanceSinusoid {
            try ops.add(try guidance(sinusoid, ops), into: embedding)
        }
        try ops.add(try text(inputs.pooledProjections, ops), into: embedding)
        return embedding
    }
}

/// `linear_2(SiLU(linear_1(x)))`.
struct FluxCUDAEmbeddingMLP: Sendable {
    let first: FluxCUDALinear
    let second: FluxCUDALinear

    init(_ prefix: String, _ inFeatures: Int, _ width: Int, _ loader: FluxCUDALayerLoader) throws {
        first = try loader.linear("\(prefix).linear_1", inFeatures, width)
        second = try loader.linear("\(prefix).linear_2", width, width)
    }

    func callAsFunction(_ x: DeviceTensor, _ ops: FluxCUDAOps) throws -> DeviceTensor {
        let hidden = try ops.linear(first, x)
        try ops.apply(.silu, hidden)
        return try ops.linear(second, hidden)
    }
}
