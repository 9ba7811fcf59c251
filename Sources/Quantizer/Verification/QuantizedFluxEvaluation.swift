import CPUBackend
import Models
import NunchakuCore

/// Measures a quantized FLUX checkpoint against the full-precision model it came from: both run on the CPU in bf16
/// on the same forward inputs (the quantized one through the CPU references of Nunchaku's kernels, loaded as
/// `nunchaku run-transformer` loads it), and the relative error ‖y_q − y‖_F / ‖y‖_F of the outputs is reported.
public struct QuantizedFluxEvaluation {
    let quantized: FluxTransformer
    let reference: FluxTransformer

    /// Loads the Nunchaku checkpoint at `path` through Models' SVDQuant path (kernel-exact layers, bf16) and the
    /// reference model (bf16, weights read from the mapped checkpoint layer by layer).
    /// - Throws: when the file is not a loadable FLUX checkpoint or its tensors do not fit its config.
    public init(quantizedCheckpoint path: String, reference model: FluxSourceModel) throws {
        quantized = try FluxTransformer(files: FluxModelFiles(path: path), computeDType: .bf16)
        reference = try FluxTransformer(
            config: model.config, weights: model.weights, layout: .diffusers, computeDType: .bf16,
            linearFactory: MappedDenseLinearFactory(), source: model.source)
    }

    /// The relative output error on one set of forward inputs (diffusers argument names).
    public func relativeError(inputs: any TensorProvider) throws -> Double {
        try Comparison.relativeError(quantized.forward(inputs: inputs), reference.forward(inputs: inputs))
    }
}
