import NunchakuCore
import SafeTensors
import SVDQuant

extension FluxTransformer {
    /// Loads the transformer in `files`, choosing its layers by the checkpoint's format:
    /// - unquantized checkpoints (diffusers or Nunchaku block names): plain layers (`DenseLinearFactory`);
    /// - Nunchaku SVDQuant INT4 and NVFP4 checkpoints (merged single file with the config in its metadata, legacy
    ///   folder): W4A4 block projections, AWQ W4A16 adaLN linears, BF16 rest (`SVDQuantLinearFactory`).
    ///
    /// The block layout comes from the tensor names, precision and rank from the quantization config (or, where
    /// there is none, the tensors).
    /// - Parameters:
    ///   - computeDType: `.f32` or `.bf16`; kernel-exact quantized layers need `.bf16`.
    ///   - quantizedLayers: how quantized layers compute (ignored for unquantized checkpoints).
    /// - Throws: `NunchakuError` naming the checkpoint when it cannot run this way (saying what would), when its
    ///   quantization config disagrees with its tensors, or when its blocks differ from the config;
    ///   `WeightLoadingError` listing every missing, unexpected, mis-shaped or unusable tensor.
    public init(files: FluxModelFiles, computeDType: DType, quantizedLayers: SVDQuantLinearFactory.Mode = .kernelExact) throws {
        let source = files.source
        guard let layout = FluxCheckpointLayout.detect(in: files.weights) else {
            throw NunchakuError.invalidArgument(
                context: source, reason: "no FLUX block weights (no transformer_blocks.0 or single_transformer_blocks.0 projection)")
        }
        let factory = try FluxCheckpointFactory.make(
            for: files.weights, layout: layout, computeDType: computeDType, mode: quantizedLayers, source: source)
        try self.init(
            config: files.config, weights: files.weights, layout: layout, computeDType: computeDType, linearFactory: factory,
            source: source)
    }
}

/// Picks the linear-layer factory for a FLUX checkpoint from its format, checking what must agree before any
/// layer is read.
enum FluxCheckpointFactory {
    static func make(
        for checkpoint: SafeTensorsCheckpoint, layout: FluxCheckpointLayout, computeDType: DType,
        mode: SVDQuantLinearFactory.Mode, source: String
    ) throws -> any LinearLayerFactory {
        func refuse(_ reason: String) -> NunchakuError { .unsupported(context: source, reason: reason) }
        switch try detectCheckpointFormat(checkpoint) {
        case .dense:
            return DenseLinearFactory()
        case let .nunchakuMerged(parameters, _), let .nunchakuLegacyFolder(parameters), let .svdquantTensors(parameters):
            guard layout == .nunchaku else {
                throw refuse("SVDQuant tensors under diffusers block names (Nunchaku-Lite style) are not supported yet; use a Nunchaku merged file or legacy folder")
            }
            let precision = try precision(parameters, checkpoint, source: source)
            if let groupSize = parameters.groupSize, groupSize != precision.groupSize {
                throw NunchakuError.invalidArgument(
                    context: source, reason: "group size \(groupSize) does not fit \(precision), whose group size is \(precision.groupSize)")
            }
            let rank = try rank(parameters, checkpoint, source: source)
            if mode == .kernelExact, computeDType != .bf16 {
                throw refuse(
                    "this SVDQuant \(precision) checkpoint runs in bf16: its kernel-exact W4A4 and AWQ layers quantize 16-bit activations, not \(computeDType). Compute in bf16 (run-transformer --dtype bf16), or use the dequantized layers (--dequantize) to run its dense equivalent in \(computeDType)")
            }
            return SVDQuantLinearFactory(precision: precision, rank: rank, mode: mode)
        case .canonicalSVDQuant:
            throw refuse("the canonical row-major SVDQuant layout is not loadable by the FLUX model yet; use a Nunchaku merged file or legacy folder")
        case .nunchakuLite:
            throw refuse("Nunchaku-Lite (diffusers-named SVDQuant) folders are not supported yet; use a Nunchaku merged file or legacy folder")
        case .lora:
            throw NunchakuError.invalidArgument(context: source, reason: "is a LoRA adapter, not a transformer")
        case .unrecognized:
            throw NunchakuError.invalidArgument(context: source, reason: "holds no floating-point or SVDQuant weights")
        }
    }

    /// The precision the quantization config declares, checked against the W4A4 layers' `wscales` (float8 micro-
    /// scales mean NVFP4, 16-bit group scales INT4).
    private static func precision(
        _ parameters: SVDQuantParameters, _ checkpoint: SafeTensorsCheckpoint, source: String
    ) throws -> SVDQuantPrecision {
        let names = Set(checkpoint.tensorNames)
        let scales = checkpoint.tensorNames.first { name in
            name.hasSuffix(".wscales") && !names.contains(String(name.dropLast("wscales".count)) + "wzeros")
        }
        let fromTensors = try scales.map { name -> (String, SafeTensorsDType, SVDQuantPrecision) in
            let dtype = try checkpoint.info(name).dtype
            return (name, dtype, dtype == .f8e4m3 ? .nvfp4 : .int4)
        }
        let declared = parameters.inferredFields.contains("precision") ? nil
            : parameters.precision.flatMap { SVDQuantPrecision(rawValue: $0.rawValue) }
        if let declared, let (name, dtype, actual) = fromTensors, declared != actual {
            throw NunchakuError.invalidArgument(
                context: source,
                reason: "the quantization config says \(declared), but \(name) is \(dtype), so the tensors are \(actual); the metadata does not describe these weights")
        }
        guard let precision = declared ?? fromTensors?.2 else {
            throw NunchakuError.invalidArgument(context: source, reason: "no W4A4 layer (qweight + wscales without wzeros) to run")
        }
        return precision
    }

    /// The low-rank rank: the first `lora_down`'s width, which must equal the declared rank.
    private static func rank(_ parameters: SVDQuantParameters, _ checkpoint: SafeTensorsCheckpoint, source: String) throws -> Int {
        guard let name = checkpoint.tensorNames.first(where: { $0.hasSuffix(".lora_down") }),
              let actual = try checkpoint.info(name).shape.last
        else {
            throw NunchakuError.invalidArgument(context: source, reason: "no lora_down tensor, so the low-rank rank is unknown")
        }
        if let declared = parameters.rank, declared != actual {
            throw NunchakuError.invalidArgument(
                context: source, reason: "the quantization config says rank \(declared), but \(name) has rank \(actual)")
        }
        return actual
    }
}
