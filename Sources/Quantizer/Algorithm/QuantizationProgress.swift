/// A progress report from the quantizer, sent after each unit of work of a layer.
public struct QuantizationProgress: Sendable {
    public enum Stage: Sendable {
        /// Smoothing candidate `index` (0-based) of `count` was evaluated.
        case smoothingCandidate(index: Int, count: Int, alpha: Double?, error: Double)
        /// Low-rank round `round` (0-based) of at most `count` was evaluated.
        case lowRankRound(round: Int, count: Int, error: Double)
        /// The layer is done; `error` is its final objective.
        case finished(error: Double)
    }

    /// The layer's name.
    public let layer: String
    /// 0-based position of the layer in the batch.
    public let layerIndex: Int
    public let layerCount: Int
    public let stage: Stage
}
