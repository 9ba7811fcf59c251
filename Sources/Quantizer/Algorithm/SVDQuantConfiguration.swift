/// Settings of the SVDQuant W4A4 quantizer. Defaults follow DeepCompressor's `configs/svdquant` (research §9),
/// scaled down where the search there is exhaustive (100 low-rank rounds become a few, with early stop).
public struct SVDQuantConfiguration: Sendable {
    public var format: W4A4Format
    /// Rank of the low-rank branch: a multiple of 16, at most min(N, K); 0 switches the branch off.
    public var rank: Int
    /// Search the smoothing factors; when false the smoothing is the identity (smooth = 1).
    public var smoothing: Bool
    /// α is searched over {i / gridPoints : 1 ≤ i < gridPoints}, plus the identity (no smoothing).
    public var smoothingGridPoints: Int
    /// At most this many rounds of `L = SVD_r(W − Q(W − L))` (the first round is `SVD_r(W)`); the best is kept and
    /// the loop stops at the first round that does not improve.
    public var lowRankRounds: Int
    /// Calibration rows used by the output-error objective (evenly spaced); the channel maxima use all rows.
    public var objectiveRows: Int
    /// The randomized SVD of the low-rank rounds.
    public var svd: RandomizedSVDOptions
    /// Power iterations of the SVDs run inside the smoothing search (one per candidate, so kept cheaper).
    public var searchPowerIterations: Int
    /// Layers that read the same input get one smoothing vector (a FLUX single block's `qkv_proj` and `mlp_fc1`,
    /// as in DeepCompressor's checkpoints), which lets the fast CUDA path quantize that input once for both; when
    /// false each layer is smoothed on its own.
    public var sharedSmoothing: Bool

    public init(
        format: W4A4Format, rank: Int = 32, smoothing: Bool = true, smoothingGridPoints: Int = 20,
        lowRankRounds: Int = 4, objectiveRows: Int = 256, svd: RandomizedSVDOptions = RandomizedSVDOptions(),
        searchPowerIterations: Int = 1, sharedSmoothing: Bool = true
    ) {
        self.format = format
        self.rank = rank
        self.smoothing = smoothing
        self.smoothingGridPoints = smoothingGridPoints
        self.lowRankRounds = lowRankRounds
        self.objectiveRows = objectiveRows
        self.svd = svd
        self.searchPowerIterations = searchPowerIterations
        self.sharedSmoothing = sharedSmoothing
    }
}
