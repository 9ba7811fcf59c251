/// Step 1 of `SVDQuantizer`: the α grid search, for one layer or for layers that share their input and so one
/// smoothing vector.
enum SmoothingSearch {
    /// The chosen α (nil: the identity), each layer's candidate for it, and each layer's trials.
    struct Result {
        let alpha: Double?
        let chosen: [LayerQuantization.Candidate]
        let trials: [[SmoothingTrial]]
    }

    /// Tries the identity and every α of the grid. The factors use the layers' shared activation maxima and
    /// `max|W_:,j|` over all of their weights; a candidate's error is the layer's own for a lone layer, else the
    /// layers' combined relative output error `sqrt(Σ e_i² ‖Y_i‖² / Σ ‖Y_i‖²)`. The identity stays unless an α
    /// is strictly better. `report(member, stage)` follows each layer's evaluation.
    static func run(
        _ layers: [LayerQuantization], configuration: SVDQuantConfiguration,
        report: (Int, QuantizationProgress.Stage) -> Void
    ) throws -> Result {
        let columns = layers[0].layer.inFeatures
        let activationMax = layers[0].activationMax
        var weightMax = layers[0].weightMax
        for layer in layers.dropFirst() {
            for column in 0..<columns { weightMax[column] = max(weightMax[column], layer.weightMax[column]) }
        }
        let alphas = configuration.smoothing ? Smoothing.alphaCandidates(gridPoints: configuration.smoothingGridPoints) : [nil]
        var trials = [[SmoothingTrial]](repeating: [], count: layers.count)
        var best: (alpha: Double?, candidates: [LayerQuantization.Candidate], error: Double)?
        for (index, alpha) in alphas.enumerated() {
            let smooth = alpha.map { Smoothing.factors(activationMax: activationMax, weightMax: weightMax, alpha: $0) }
                ?? [Float](repeating: 1, count: columns)
            var candidates: [LayerQuantization.Candidate] = []
            for (member, layer) in layers.enumerated() {
                let candidate = try layer.trySmoothing(smooth)
                candidates.append(candidate)
                trials[member].append(SmoothingTrial(alpha: alpha, error: candidate.error))
                report(member, .smoothingCandidate(index: index, count: alphas.count, alpha: alpha, error: candidate.error))
            }
            let error = combinedError(candidates, layers)
            if best == nil || error < best!.error { best = (alpha, candidates, error) }
        }
        return Result(alpha: best!.alpha, chosen: best!.candidates, trials: trials)
    }

    /// The layers' combined relative error (a lone layer's own error, unchanged).
    private static func combinedError(_ candidates: [LayerQuantization.Candidate], _ layers: [LayerQuantization]) -> Double {
        guard candidates.count > 1 else { return candidates[0].error }
        var squaredError = 0.0, squaredReference = 0.0
        for (candidate, layer) in zip(candidates, layers) {
            let reference = layer.objective.referenceNorm
            squaredError += candidate.error * candidate.error * reference * reference
            squaredReference += reference * reference
        }
        return squaredReference > 0 ? (squaredError / squaredReference).squareRoot() : candidates.map(\.error).max()!
    }
}
