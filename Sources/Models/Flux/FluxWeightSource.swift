import NunchakuCore
import SafeTensors
import SVDQuant

/// How a FLUX checkpoint's weights are stored, decided once from its format for every backend (CPU and CUDA).
public enum FluxWeightSource {
    /// An SVDQuant checkpoint in any container `SVDQuantCheckpoint` opens; engine names are Nunchaku's C++ block names.
    case svdquant(SVDQuantCheckpoint)
    /// Unquantized weights with diffusers or Nunchaku block names.
    case dense(FluxCheckpointLayout)
}

extension FluxModelFiles {
    /// What the checkpoint holds.
    /// - Throws: `NunchakuError` naming the checkpoint when it is a LoRA, holds no usable weights or no FLUX blocks;
    ///   `SVDQuantCheckpointError` when its quantized tensors do not form valid layers.
    public func weightSource() throws -> FluxWeightSource {
        switch try detectCheckpointFormat(weights) {
        case .nunchakuMerged, .nunchakuLegacyFolder, .nunchakuLite, .canonicalSVDQuant, .svdquantTensors:
            return .svdquant(try SVDQuantCheckpoint(weights))
        case .dense:
            guard let layout = FluxCheckpointLayout.detect(in: weights) else {
                throw NunchakuError.invalidArgument(
                    context: source, reason: "no FLUX block weights (no transformer_blocks.0 or single_transformer_blocks.0 projection)")
            }
            return .dense(layout)
        case .lora:
            throw NunchakuError.invalidArgument(context: source, reason: "is a LoRA adapter, not a transformer")
        case .unrecognized:
            throw NunchakuError.invalidArgument(context: source, reason: "holds no floating-point or SVDQuant weights")
        }
    }
}
