import NunchakuCore
import SafeTensors
import SVDQuant

extension FluxTransformer {
    /// Loads the transformer in `files`, choosing its layers by the checkpoint's format:
    /// - unquantized checkpoints (diffusers or Nunchaku block names): plain layers (`DenseLinearFactory`);
    /// - SVDQuant INT4 and NVFP4 checkpoints that `SVDQuantCheckpoint` opens (Nunchaku merged file, legacy folder,
    ///   Nunchaku-Lite folder, canonical file; C++ or Python names): W4A4 block projections, AWQ W4A16 adaLN
    ///   linears, BF16 rest (`SVDQuantLinearFactory`).
    ///
    /// - Parameters:
    ///   - computeDType: `.f32` or `.bf16`; kernel-exact quantized layers need `.bf16`.
    ///   - quantizedLayers: how quantized layers compute (ignored for unquantized checkpoints).
    /// - Throws: `SVDQuantCheckpointError` for quantized tensors that do not form the layers the checkpoint's format
    ///   and quantization config describe; `NunchakuError` naming the checkpoint when it cannot run this way (saying
    ///   what would) or its blocks differ from the config; `WeightLoadingError` listing every missing, unexpected,
    ///   mis-shaped or unusable tensor or layer.
    public init(files: FluxModelFiles, computeDType: DType, quantizedLayers: SVDQuantLinearFactory.Mode = .kernelExact) throws {
        let source = files.source
        switch try files.weightSource() {
        case .svdquant(let checkpoint):
            if quantizedLayers == .kernelExact, computeDType != .bf16 {
                throw NunchakuError.unsupported(
                    context: source,
                    reason: "this SVDQuant \(checkpoint.precision?.rawValue ?? "") checkpoint runs in bf16: its kernel-exact W4A4 and AWQ layers quantize 16-bit activations, not \(computeDType). Compute in bf16 (run-transformer --dtype bf16), or use the dequantized layers (--dequantize) to run its dense equivalent in \(computeDType)")
            }
            try self.init(
                config: files.config, weights: SVDQuantModelTensors(checkpoint), layout: .nunchaku, computeDType: computeDType,
                linearFactory: SVDQuantLinearFactory(checkpoint: checkpoint, mode: quantizedLayers), source: source)
        case .dense(let layout):
            try self.init(config: files.config, weights: files.weights, layout: layout, computeDType: computeDType, source: source)
        }
    }
}
