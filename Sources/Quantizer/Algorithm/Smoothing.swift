/// SmoothQuant-style per-input-channel factors: `s_j = max|X_j|^α / max|W_:,j|^(1−α)` (research §9).
///
/// The runtime divides the input by `s` and the weight columns are multiplied by it, so the layer is unchanged in
/// exact arithmetic while activation outliers move into the weights (where the low-rank branch absorbs them).
enum Smoothing {
    /// max over rows of |x[row][j]| for each column j of a row-major [rows, columns] matrix.
    static func columnAbsMax(_ x: [Float], rows: Int, columns: Int) -> [Float] {
        var maxima = [Float](repeating: 0, count: columns)
        for row in 0..<rows {
            let base = row * columns
            for column in 0..<columns { maxima[column] = max(maxima[column], abs(x[base + column])) }
        }
        return maxima
    }

    /// The factors for `alpha`, rounded to bf16 (the checkpoint's dtype) so that the weights are smoothed by exactly
    /// the divisor the runtime will use. Channels where either maximum is zero keep factor 1.
    static func factors(activationMax: [Float], weightMax: [Float], alpha: Double) -> [Float] {
        zip(activationMax, weightMax).map { xMax, wMax in
            guard xMax > 0, wMax > 0 else { return 1 }
            let value = ElementaryFunctions.power(Double(xMax), alpha) / ElementaryFunctions.power(Double(wMax), 1 - alpha)
            let rounded = WeightQuantizer.bf16(Float(value))
            return rounded.isFinite && rounded > 0 ? rounded : 1
        }
    }

    /// The α values searched: nil (the identity, no smoothing) then i/gridPoints for 1 ≤ i < gridPoints.
    static func alphaCandidates(gridPoints: Int) -> [Double?] {
        [nil] + (1..<gridPoints).map { Double($0) / Double(gridPoints) }
    }

    /// `weight · diag(factors)`: column j multiplied by factors[j].
    static func scaleColumns(_ weight: [Float], rows: Int, columns: Int, by factors: [Float]) -> [Float] {
        var result = weight
        for row in 0..<rows {
            let base = row * columns
            for column in 0..<columns { result[base + column] *= factors[column] }
        }
        return result
    }
}
