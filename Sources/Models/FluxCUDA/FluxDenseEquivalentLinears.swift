import CUDABackend
import NunchakuCore
import SVDQuant

/// Another source's linear layers as the dense layers they stand for: W4A4 layers as `SVDQW4A4Weights.denseEquivalent`
/// (no activation quantization), AWQ layers as their dequantized weight, dense layers as they are. The GPU model of
/// these is the BF16 model a quantized checkpoint stands for — the reference of the W4A4 numerics' end-to-end error
/// at full size, where the CPU dense-equivalent model (`FluxRandomDenseReference`) is too slow.
struct FluxDenseEquivalentLinears: FluxHostLinearSource {
    let source: any FluxHostLinearSource

    func hostLinear(_ spec: LinearLayerSpec, weights: WeightReader) throws -> FluxHostLinear {
        switch try source.hostLinear(spec, weights: weights) {
        case let .w4a4(layer):
            let (weight, bias) = layer.denseEquivalent()
            return .dense(weight: Tensor(weight, shape: [layer.outFeatures, layer.inFeatures]), bias: Tensor(bias, shape: [layer.outFeatures]))
        case let .awq(layer):
            let bias = layer.canonical.bias ?? Tensor(zeros: [layer.outFeatures], dtype: .f32)
            return .dense(weight: Tensor(layer.dequantizedWeight(), shape: [layer.outFeatures, layer.inFeatures]), bias: bias)
        case let layer:
            return layer
        }
    }
}

extension FluxCUDATransformer {
    /// The dense-equivalent model of a random-weight SVDQuant checkpoint on the GPU (`FluxDenseEquivalentLinears`:
    /// every layer dense, bf16, on `CUDAGEMM`), as `FluxTransformer(denseEquivalentOf:)` is on the CPU.
    public init(denseEquivalentOf checkpoint: FluxRandomCheckpoint, context: CUDAContext, attention: AttentionPrecision = .bf16) throws {
        try self.init(config: checkpoint.config, weights: checkpoint.tensors, layout: checkpoint.layout,
                      linears: FluxDenseEquivalentLinears(source: checkpoint), context: context,
                      source: "random \(checkpoint.format) FLUX, dense equivalent (seed \(checkpoint.seed))", numerics: .exact,
                      attention: attention)
    }
}
