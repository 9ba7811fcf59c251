import CPUBackend
import Models
import NunchakuCore
import SafeTensors
import SVDQuant

/// Measures a quantized FLUX checkpoint against the full-precision model it came from: both run on the CPU in bf16
/// on the same forward inputs (the quantized one through the CPU references of Nunchaku's kernels), and the
/// relative error ‖y_q − y‖_F / ‖y‖_F of the outputs is reported.
public struct QuantizedFluxEvaluation {
    let quantized: FluxTransformer
    let reference: FluxTransformer

    /// Loads the Nunchaku merged file at `path` (precision and rank from its `quantization_config`) and the
    /// reference model.
    /// - Throws: when the file is not a Nunchaku merged checkpoint or its tensors do not fit the model.
    public init(quantizedCheckpoint path: String, reference model: FluxSourceModel) throws {
        let files = try FluxModelFiles(path: path)
        guard case let .nunchakuMerged(parameters, _) = try detectCheckpointFormat(files.weights),
              let precision = parameters.precision, let rank = parameters.rank else {
            throw NunchakuError.invalidArgument(context: path, reason: "not a Nunchaku merged checkpoint with a precision and rank")
        }
        quantized = try FluxTransformer(
            config: files.config, weights: files.weights, layout: .nunchaku, computeDType: .bf16,
            linearFactory: NunchakuCheckpointLinearFactory(format: precision == .int4 ? .int4 : .nvfp4, rank: rank),
            source: path)
        reference = try FluxTransformer(
            config: model.config, weights: model.weights, layout: .diffusers, computeDType: .bf16,
            linearFactory: MappedDenseLinearFactory(), source: model.source)
    }

    /// The relative output error on one set of forward inputs (diffusers argument names).
    public func relativeError(inputs: any TensorProvider) throws -> Double {
        try Comparison.relativeError(quantized.forward(inputs: inputs), reference.forward(inputs: inputs))
    }
}
