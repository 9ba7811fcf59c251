import CUDABackend
import Models
import NunchakuCore

/// A LayerNorm with weight and bias on the GPU. The LayerNorm kernel applies `y·(scaleOffset + scale) + shift` with
/// per-sample `[B, D]` vectors (adaLN), so the affine parameters become a `[B, 2·D]` table `[bias ‖ weight]`,
/// one row per sample, used with `scaleOffset` 0: `y = norm(x)·weight + bias` in float32, rounded once.
struct CUDAEncoderLayerNorm: Sendable {
    let weight: [Float]
    let bias: [Float]
    let eps: Float

    /// Reads `<name>.weight` and `<name>.bias` `[width]`, rounded to bf16.
    init(_ name: String, width: Int, eps: Float, reader: WeightReader) throws {
        let parameters = try TextEncoderNormParameters(name, width: width, hasBias: true, reader: reader, dtype: .bf16)
        weight = parameters.weight.floats()
        bias = parameters.bias?.floats() ?? []
        self.eps = eps
    }

    /// The `[batch, 2·D]` table for a batch, uploaded.
    func table(batch: Int, context: CUDAContext) throws -> DeviceTensor {
        let row = bias + weight
        let values = (0..<batch).flatMap { _ in row }
        return try DeviceTensor(uploading: Tensor.rounding(values, shape: [batch, row.count], to: .bf16), context: context)
    }

    func callAsFunction(_ x: DeviceTensor, table: DeviceTensor, context: CUDAContext) throws -> DeviceTensor {
        let modulation = AdaLNModulation(shift: ModulationChunk(table, chunk: 0), scale: ModulationChunk(table, chunk: 1), scaleOffset: 0)
        return try context.layerNorm(x, modulation: modulation, eps: eps)
    }
}

/// T5LayerNorm (RMS, no mean, no bias) on the GPU: the weight rounded to bf16, kept as float32 for the kernel.
struct CUDAEncoderRMSNorm: Sendable {
    let weight: DeviceTensor
    let eps: Float

    init(_ name: String, width: Int, eps: Float, reader: WeightReader, context: CUDAContext) throws {
        let parameters = try TextEncoderNormParameters(name, width: width, hasBias: false, reader: reader, dtype: .bf16)
        weight = try DeviceTensor(uploading: Tensor(parameters.weight.floats(), shape: [width]), context: context)
        self.eps = eps
    }

    func callAsFunction(_ x: DeviceTensor, context: CUDAContext) throws -> DeviceTensor {
        try context.rmsNorm(x, weight: weight, eps: eps)
    }
}

/// Rows of token ids embedded on the host (the table stays in the checkpoint's memory: one row per token is read),
/// rounded to bf16 and uploaded as `[B, S, D]`.
func uploadEmbeddings(_ rows: [Float], batch: Int, tokens: Int, width: Int, context: CUDAContext) throws -> DeviceTensor {
    try DeviceTensor(uploading: Tensor.rounding(rows, shape: [batch, tokens, width], to: .bf16), context: context)
}
