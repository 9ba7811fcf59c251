import NunchakuCore

/// The SVDQuant W4A4 quantizer (research §9, DeepCompressor's recipe), on in-memory matrices:
/// 1. smoothing `s_j = max|X_j|^α / max|W_:,j|^(1−α)`, α grid-searched against the simulated output error
///    (each candidate with a one-round low-rank branch, as DeepCompressor's `allow_low_rank`);
/// 2. the low-rank branch `L = SVD_r(W_s − Q(W_s − L))`, iterated from `L = SVD_r(W_s)`, the best round kept;
/// 3. the residual `W_s − L` quantized by round-to-nearest with symmetric group scales (`WeightQuantizer`).
/// Post-GELU INT4 layers work on the shifted input `x + 0.171875` and get the bias correction of research §3.6.
public enum SVDQuantizer {
    /// Quantizes `layers` one after another, each with its own smoothing, after checking all of them first.
    /// - Parameter progress: called on the caller's thread after each smoothing candidate, low-rank round and layer.
    /// - Throws: `NunchakuError` naming the first bad layer, before any long work starts; or a factorization error.
    public static func quantize(
        _ layers: [W4A4LayerInput], configuration: SVDQuantConfiguration,
        linearAlgebra: any DenseLinearAlgebra = DenseLinearAlgebraProvider.preferred(),
        progress: (QuantizationProgress) -> Void = { _ in }
    ) throws -> [QuantizedW4A4Linear] {
        for layer in layers { try LayerValidation.validateW4A4(layer, configuration: configuration) }
        return try layers.enumerated().map { index, layer in
            try quantizeGroup([layer], firstIndex: index, count: layers.count, configuration: configuration,
                              linearAlgebra: linearAlgebra, progress: progress)[0]
        }
    }

    /// Quantizes one layer; see `quantize(_:configuration:linearAlgebra:progress:)`.
    public static func quantize(
        _ layer: W4A4LayerInput, configuration: SVDQuantConfiguration,
        linearAlgebra: any DenseLinearAlgebra = DenseLinearAlgebraProvider.preferred(),
        progress: (QuantizationProgress) -> Void = { _ in }
    ) throws -> QuantizedW4A4Linear {
        try quantize([layer], configuration: configuration, linearAlgebra: linearAlgebra, progress: progress)[0]
    }

    /// Quantizes layers that read the same input (a FLUX single block's `qkv_proj` and `mlp_fc1`) with one smoothing
    /// vector, as DeepCompressor does: α is chosen on their combined output error, `max|W_:,j|` is taken over all
    /// their weights, and each layer then gets its own low-rank branch and residual. The runtime can then smooth and
    /// quantize the shared input once for all of them (`CUDAW4A4FastSharedInput`).
    /// - Throws: `NunchakuError` before any long work when a layer is bad, or when the layers differ in K, input kind
    ///   or calibration activations (naming the two layers).
    public static func quantize(
        sharingSmoothing layers: [W4A4LayerInput], configuration: SVDQuantConfiguration,
        linearAlgebra: any DenseLinearAlgebra = DenseLinearAlgebraProvider.preferred(),
        progress: (QuantizationProgress) -> Void = { _ in }
    ) throws -> [QuantizedW4A4Linear] {
        for layer in layers { try LayerValidation.validateW4A4(layer, configuration: configuration) }
        try LayerValidation.validateSharedInput(layers)
        return try quantizeGroup(layers, firstIndex: 0, count: layers.count, configuration: configuration,
                                 linearAlgebra: linearAlgebra, progress: progress)
    }

    /// Steps 1–3 for layers sharing one smoothing (a group of one for a lone layer); `firstIndex` and `count` place
    /// them in the caller's batch for the progress reports.
    private static func quantizeGroup(
        _ layers: [W4A4LayerInput], firstIndex: Int, count: Int, configuration: SVDQuantConfiguration,
        linearAlgebra: any DenseLinearAlgebra, progress: (QuantizationProgress) -> Void
    ) throws -> [QuantizedW4A4Linear] {
        let quantizations = layers.map { LayerQuantization(layer: $0, configuration: configuration, linearAlgebra: linearAlgebra) }
        func report(_ member: Int, _ stage: QuantizationProgress.Stage) {
            progress(QuantizationProgress(layer: layers[member].name, layerIndex: firstIndex + member, layerCount: count, stage: stage))
        }
        let search = try SmoothingSearch.run(quantizations, configuration: configuration, report: report)
        let names = layers.map(\.name)
        return try quantizations.indices.map { member in
            let sharedWith = layers.count > 1 ? names.filter { $0 != names[member] } : []
            return try quantizations[member].finish(
                search.chosen[member], alpha: search.alpha, trials: search.trials[member], sharedWith: sharedWith,
                report: { report(member, $0) })
        }
    }
}
