/// The work on one layer, in the order of `SVDQuantizer`'s steps: the smoothing candidates of step 1 (chosen by
/// `SmoothingSearch`), then the low-rank rounds and the encoding.
struct LayerQuantization {
    let layer: W4A4LayerInput
    let configuration: SVDQuantConfiguration
    let linearAlgebra: any DenseLinearAlgebra
    /// The simulated output error the candidates are measured by.
    let objective: OutputErrorObjective
    /// `max|X_j|` over all calibration rows (shifted for post-GELU INT4 layers); ones without calibration.
    let activationMax: [Float]
    /// `max|W_:,j|`.
    let weightMax: [Float]
    let source: SmoothingSource

    private var rows: Int { layer.outFeatures }
    private var columns: Int { layer.inFeatures }
    /// INT4 post-GELU layers work on `x + 0.171875` (quantized unsigned by the runtime) and get a corrected bias.
    private let shifted: Bool

    /// One evaluated (smoothing, low-rank, quantized residual) combination.
    struct Candidate {
        let smooth: [Float]
        let lowRank: SmoothedLowRank?
        let quantized: QuantizedWeight
        let error: Double
    }

    init(layer: W4A4LayerInput, configuration: SVDQuantConfiguration, linearAlgebra: any DenseLinearAlgebra) {
        self.layer = layer
        self.configuration = configuration
        self.linearAlgebra = linearAlgebra
        let columns = layer.inFeatures
        shifted = configuration.format == .int4 && layer.inputKind == .postGELU
        let shift: Float = shifted ? postGELUShift : 0
        let inputs = layer.calibration.map { calibration in calibration.values.map { $0 + shift } }
        objective = OutputErrorObjective(
            weight: layer.weight, outFeatures: layer.outFeatures, inFeatures: columns,
            activationQuantizer: ActivationQuantizer(format: configuration.format, inputKind: layer.inputKind),
            inputs: inputs.map { Self.objectiveRows(of: $0, columns: columns, count: configuration.objectiveRows) })
        activationMax = inputs.map { Smoothing.columnAbsMax($0, rows: $0.count / columns, columns: columns) }
            ?? [Float](repeating: 1, count: columns)
        weightMax = Smoothing.columnAbsMax(layer.weight, rows: layer.outFeatures, columns: columns)
        source = !configuration.smoothing ? .disabled : (inputs == nil ? .weightsOnly : .calibration)
    }

    /// A smoothing candidate of step 1: the weight smoothed by `smooth`, a one-round low-rank branch (cheaper SVD)
    /// and the quantized residual, measured by the objective.
    func trySmoothing(_ smooth: [Float]) throws -> Candidate {
        var searchSVD = configuration.svd
        searchSVD.powerIterations = configuration.searchPowerIterations
        let smoothed = Smoothing.scaleColumns(layer.weight, rows: rows, columns: columns, by: smooth)
        let lowRank = try configuration.rank > 0 ? lowRankBranch(of: smoothed, options: searchSVD) : nil
        return try evaluate(smoothed, smooth: smooth, lowRank: lowRank)
    }

    /// Steps 2 and 3 on the chosen smoothing, then the canonical tensors. `sharedWith` names the layers whose
    /// smoothing this one shares (for the report's notes).
    func finish(
        _ chosen: Candidate, alpha: Double?, trials: [SmoothingTrial], sharedWith: [String],
        report: (QuantizationProgress.Stage) -> Void
    ) throws -> QuantizedW4A4Linear {
        var chosen = chosen
        var roundErrors: [Double] = []
        if configuration.rank > 0 {
            let smoothed = Smoothing.scaleColumns(layer.weight, rows: rows, columns: columns, by: chosen.smooth)
            var target = smoothed
            var roundBest: Candidate?
            for round in 0..<configuration.lowRankRounds {
                let lowRank = try lowRankBranch(of: target, options: configuration.svd)
                let candidate = try evaluate(smoothed, smooth: chosen.smooth, lowRank: lowRank)
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
        return encode(chosen, alpha: alpha, trials: trials, roundErrors: roundErrors, sharedWith: sharedWith)
    }

    /// The rows the objective uses: all of them, or `count` evenly spaced ones.
    private static func objectiveRows(of inputs: [Float], columns: Int, count: Int) -> [Float] {
        let available = inputs.count / columns
        guard available > count else { return inputs }
        var selected: [Float] = []
        selected.reserveCapacity(count * columns)
        for index in 0..<count {
            let row = index * available / count
            selected.append(contentsOf: inputs[(row * columns)..<((row + 1) * columns)])
        }
        return selected
    }

    private func lowRankBranch(of matrix: [Float], options: RandomizedSVDOptions) throws -> SmoothedLowRank {
        SmoothedLowRank(try RandomizedSVD.compute(
            matrix, rows: rows, columns: columns, rank: configuration.rank, options: options, linearAlgebra: linearAlgebra))
    }

    /// Quantizes the residual `smoothed − L` and measures the objective.
    private func evaluate(_ smoothed: [Float], smooth: [Float], lowRank: SmoothedLowRank?) throws -> Candidate {
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
        _ chosen: Candidate, alpha: Double?, trials: [SmoothingTrial], roundErrors: [Double], sharedWith: [String]
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
        if !sharedWith.isEmpty {
            notes.append("smoothing shared with \(sharedWith.joined(separator: ", ")) (same input): α chosen on their combined output error")
        }
        return QuantizedW4A4Linear(
            name: layer.name, format: configuration.format, outFeatures: rows, inFeatures: columns, rank: rank,
            codes: chosen.quantized.codes, wscales: chosen.quantized.scales, wtscale: chosen.quantized.tensorScale,
            smooth: chosen.smooth, projDown: projDown, projUp: projUp, bias: bias, activationsUnsigned: shifted,
            report: W4A4QuantizationReport(
                smoothingSource: source, alpha: alpha, smoothingTrials: trials, lowRankRoundErrors: roundErrors,
                relativeError: chosen.error, notes: notes))
    }
}
