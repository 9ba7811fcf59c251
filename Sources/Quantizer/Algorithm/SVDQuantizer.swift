import NunchakuCore

/// The SVDQuant W4A4 quantizer (research §9, DeepCompressor's recipe), on in-memory matrices:
/// 1. smoothing `s_j = max|X_j|^α / max|W_:,j|^(1−α)`, α grid-searched against the simulated output error
///    (each candidate with a one-round low-rank branch, as DeepCompressor's `allow_low_rank`);
/// 2. the low-rank branch `L = SVD_r(W_s − Q(W_s − L))`, iterated from `L = SVD_r(W_s)`, the best round kept;
/// 3. the residual `W_s − L` quantized by round-to-nearest with symmetric group scales (`WeightQuantizer`).
/// Post-GELU INT4 layers work on the shifted input `x + 0.171875` and get the bias correction of research §3.6.
public enum SVDQuantizer {
    /// Quantizes `layers` one after another, after checking all of them first.
    /// - Parameter progress: called on the caller's thread after each smoothing candidate, low-rank round and layer.
    /// - Throws: `NunchakuError` naming the first bad layer, before any long work starts; or a factorization error.
    public static func quantize(
        _ layers: [W4A4LayerInput], configuration: SVDQuantConfiguration,
        linearAlgebra: any DenseLinearAlgebra = DenseLinearAlgebraProvider.preferred(),
        progress: (QuantizationProgress) -> Void = { _ in }
    ) throws -> [QuantizedW4A4Linear] {
        for layer in layers { try LayerValidation.validateW4A4(layer, configuration: configuration) }
        return try layers.enumerated().map { index, layer in
            try LayerQuantization(layer: layer, configuration: configuration, linearAlgebra: linearAlgebra).run { stage in
                progress(QuantizationProgress(layer: layer.name, layerIndex: index, layerCount: layers.count, stage: stage))
            }
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
}

/// The work on one layer, in the order of `SVDQuantizer`'s steps.
private struct LayerQuantization {
    let layer: W4A4LayerInput
    let configuration: SVDQuantConfiguration
    let linearAlgebra: any DenseLinearAlgebra

    private var rows: Int { layer.outFeatures }
    private var columns: Int { layer.inFeatures }
    private var shifted: Bool { configuration.format == .int4 && layer.inputKind == .postGELU }

    /// One evaluated (smoothing, low-rank, quantized residual) combination.
    private struct Candidate {
        let smooth: [Float]
        let lowRank: SmoothedLowRank?
        let quantized: QuantizedWeight
        let error: Double
    }

    func run(report: (QuantizationProgress.Stage) -> Void) throws -> QuantizedW4A4Linear {
        let shift: Float = shifted ? postGELUShift : 0
        let inputs = layer.calibration.map { calibration in calibration.values.map { $0 + shift } }
        let objective = OutputErrorObjective(
            weight: layer.weight, outFeatures: rows, inFeatures: columns,
            activationQuantizer: ActivationQuantizer(format: configuration.format, inputKind: layer.inputKind),
            inputs: inputs.map { objectiveRows(of: $0) })
        let source: SmoothingSource = !configuration.smoothing ? .disabled : (inputs == nil ? .weightsOnly : .calibration)

        // Step 1: the smoothing search.
        let activationMax = inputs.map { Smoothing.columnAbsMax($0, rows: $0.count / columns, columns: columns) }
            ?? [Float](repeating: 1, count: columns)
        let weightMax = Smoothing.columnAbsMax(layer.weight, rows: rows, columns: columns)
        let alphas = configuration.smoothing ? Smoothing.alphaCandidates(gridPoints: configuration.smoothingGridPoints) : [nil]
        var searchSVD = configuration.svd
        searchSVD.powerIterations = configuration.searchPowerIterations
        var trials: [SmoothingTrial] = []
        func trySmoothing(_ index: Int) throws -> Candidate {
            let alpha = alphas[index]
            let smooth = alpha.map { Smoothing.factors(activationMax: activationMax, weightMax: weightMax, alpha: $0) }
                ?? [Float](repeating: 1, count: columns)
            let smoothed = Smoothing.scaleColumns(layer.weight, rows: rows, columns: columns, by: smooth)
            let lowRank = try configuration.rank > 0 ? lowRankBranch(of: smoothed, options: searchSVD) : nil
            let candidate = try evaluate(smoothed, smooth: smooth, lowRank: lowRank, objective)
            trials.append(SmoothingTrial(alpha: alpha, error: candidate.error))
            report(.smoothingCandidate(index: index, count: alphas.count, alpha: alpha, error: candidate.error))
            return candidate
        }
        // Candidate 0 is the identity; the others replace it only when strictly better.
        var alpha: Double? = nil
        var chosen = try trySmoothing(0)
        for index in alphas.indices.dropFirst() {
            let candidate = try trySmoothing(index)
            if candidate.error < chosen.error { (alpha, chosen) = (alphas[index], candidate) }
        }

        // Step 2: the iterated low-rank branch on the chosen smoothing.
        var roundErrors: [Double] = []
        if configuration.rank > 0 {
            let smoothed = Smoothing.scaleColumns(layer.weight, rows: rows, columns: columns, by: chosen.smooth)
            var target = smoothed
            var roundBest: Candidate?
            for round in 0..<configuration.lowRankRounds {
                let lowRank = try lowRankBranch(of: target, options: configuration.svd)
                let candidate = try evaluate(smoothed, smooth: chosen.smooth, lowRank: lowRank, objective)
                roundErrors.append(candidate.error)
                report(.lowRankRound(round: round, count: configuration.lowRankRounds, error: candidate.error))
                if let current = roundBest, candidate.error >= current.error { break }
                roundBest = candidate
                // The next branch approximates what the quantized residual misses: W_s − Q(W_s − L).
                target = zip(smoothed, candidate.quantized.dequantized).map { $0 - $1 }
            }
            if let roundBest, roundBest.error < chosen.error { chosen = roundBest }
        }
        report(.finished(error: chosen.error))
        return encode(chosen, alpha: alpha, source: source, trials: trials, roundErrors: roundErrors)
    }

    /// The rows the objective uses: all of them, or `objectiveRows` evenly spaced ones.
    private func objectiveRows(of inputs: [Float]) -> [Float] {
        let available = inputs.count / columns
        guard available > configuration.objectiveRows else { return inputs }
        var selected: [Float] = []
        selected.reserveCapacity(configuration.objectiveRows * columns)
        for index in 0..<configuration.objectiveRows {
            let row = index * available / configuration.objectiveRows
            selected.append(contentsOf: inputs[(row * columns)..<((row + 1) * columns)])
        }
        return selected
    }

    private func lowRankBranch(of matrix: [Float], options: RandomizedSVDOptions) throws -> SmoothedLowRank {
        SmoothedLowRank(try RandomizedSVD.compute(
            matrix, rows: rows, columns: columns, rank: configuration.rank, options: options, linearAlgebra: linearAlgebra))
    }

    /// Quantizes the residual `smoothed − L` and measures the objective.
    private func evaluate(
        _ smoothed: [Float], smooth: [Float], lowRank: SmoothedLowRank?, _ objective: OutputErrorObjective
    ) throws -> Candidate {
        var residual = smoothed
        if let lowRank {
            let effective = lowRank.effectiveWeight(rows: rows, columns: columns)
            for index in residual.indices { residual[index] -= effective[index] }
        }
        let quantized = try WeightQuantizer.quantize(residual, rows: rows, columns: columns, format: configuration.format)
        let error = try objective.relativeError(
            smooth: smooth, residual: residual, quantizedResidual: quantized.dequantized, lowRank: lowRank)
        return Candidate(smooth: smooth, lowRank: lowRank, quantized: quantized, error: error)
    }

    /// The canonical tensors: `proj_down` unsmoothed (V / s), and the bias corrected for a shifted input.
    private func encode(
        _ chosen: Candidate, alpha: Double?, source: SmoothingSource, trials: [SmoothingTrial], roundErrors: [Double]
    ) -> QuantizedW4A4Linear {
        let rank = chosen.lowRank?.rank ?? 0
        var projDown = chosen.lowRank?.down ?? []
        for column in 0..<columns {
            for j in 0..<rank { projDown[column * rank + j] /= chosen.smooth[column] }
        }
        let projUp = chosen.lowRank?.up ?? []
        let bias = shifted
            ? ShiftCorrection.bias(layer.bias, weight: layer.weight, projDown: projDown, projUp: projUp,
                                   outFeatures: rows, inFeatures: columns, rank: rank, shift: postGELUShift)
            : layer.bias ?? [Float](repeating: 0, count: rows)
        var notes: [String] = []
        if source == .weightsOnly {
            notes.append("no calibration activations: smoothing chosen from the weights only (activation outliers not seen)")
        }
        if shifted { notes.append("INT4 post-GELU input: quantized as unsigned after adding 0.171875; bias corrected") }
        return QuantizedW4A4Linear(
            name: layer.name, format: configuration.format, outFeatures: rows, inFeatures: columns, rank: rank,
            codes: chosen.quantized.codes, wscales: chosen.quantized.scales, wtscale: chosen.quantized.tensorScale,
            smooth: chosen.smooth, projDown: projDown, projUp: projUp, bias: bias, activationsUnsigned: shifted,
            report: W4A4QuantizationReport(
                smoothingSource: source, alpha: alpha, smoothingTrials: trials, lowRankRoundErrors: roundErrors,
                relativeError: chosen.error, notes: notes))
    }
}
