import NunchakuCore
import SVDQuant

/// The host-side constants of one SVDQuant W4A4 layer's fast (FP8) path, for one activation dtype: what the GPU
/// layer uploads and what the CPU reference (`W4A4FastReference`) computes with. docs/hopper.md has the math.
///
/// - The 4-bit weight codes stay 4-bit; at run time each group's codes become e4m3 relative to a per-channel unit
///   `u[n]`: INT4 `q · (s[g, n] / u[n])` with `u[n] = max_g |s[g, n]| · 8/448`; NVFP4 `2e · (s[g, n] · (0.5 / u[n]))`
///   (`2e` the E2M1 value times two, `s` the e4m3 micro-scale) with `u[n]` the power of two at or above
///   `max_g s[g, n] · 6/448`, so every product before the final e4m3 rounding is exact. Either way `|·| ≤ 448`.
///   The epilogue applies `c[n] = u[n] · wtscale · wcscales[n]` (`channelScales`; `u[n]` = 1 for a channel whose
///   scales are all 0).
/// - The low-rank branch rides in the same GEMM as R extra K columns: activations `lowRank[m, r] / beta[r]`,
///   weights `e4m3(proj_up[n, r] · beta[r] / c[n])` (made here), with `beta[r] = 256 · min_n |c[n]| / |proj_up[n, r]|`
///   so the weight codes stay ≤ 256 in magnitude.
/// - Layers that read the same input may share one activation pass (`CUDAW4A4FastSharedInput`): their GEMM rows
///   then hold every sharing layer's low-rank columns after K (`lowRankColumns`), and a layer's weights are zero
///   where the others' low-rank columns are.
public struct W4A4FastParameters: Sendable {
    /// Largest |code| of the folded low-rank weights (leaves headroom under e4m3's 448).
    public static let upCodeTarget: Float = 256
    /// Maximum rank: the quantize kernel gives one thread of its block to each low-rank value.
    public static let maxRank = 256

    public let name: String
    public let precision: SVDQuantPrecision
    public let inFeatures: Int
    public let outFeatures: Int
    public let rank: Int
    public let type: ActivationDType
    /// The layer's exact mode quantizes unsigned after adding 0.171875: the fast mode adds it too (in fp32).
    public let shifted: Bool
    /// [K]: `1 / smooth` (IEEE fp32 division of the smoothing factors rounded to `type`).
    public let inverseSmooth: [Float]
    /// [K/G, N]: INT4 group scales rounded to `type`, or NVFP4 micro-scales (exact e4m3 values).
    public let groupScales: [Float]
    /// [N]: `u[n]`, what the folded weights are relative to.
    public let weightUnits: [Float]
    /// [N]: `c[n]`, the epilogue's per-channel scale.
    public let channelScales: [Float]
    /// [R]: `1 / beta[r]`.
    public let inverseBeta: [Float]
    /// [N, R]: e4m3 codes of `proj_up · beta / c`.
    public let upCodes: [UInt8]
    /// [N] in `type`, or nil.
    public let bias: [Float]?
    /// [R, K]: `proj_down` transposed, in `type` (the rows of the low-rank GEMM's weight).
    public let projDownTransposed: [Float]
    /// Where this layer's R low-rank columns lie among the low-rank columns of its GEMM rows.
    public let lowRankColumns: W4A4FastLowRankColumns

    /// Folds `weights` for activations of `type`, its low-rank columns placed as `lowRankColumns` says (alone: the
    /// layer's own R columns right after K).
    /// - Throws: `NunchakuError.unsupported` naming the layer for a rank that is not a multiple of 16 or above 256;
    ///   `.invalidArgument` when a smoothing factor is 0 in `type`, a `wcscales` element is 0 or not finite, or
    ///   `lowRankColumns` does not hold the layer's R columns at a multiple of 16.
    public init(weights: SVDQW4A4Weights, type: ActivationDType, lowRankColumns: W4A4FastLowRankColumns? = nil) throws {
        let name = weights.name
        let tensors = weights.canonical
        let n = weights.outFeatures, k = weights.inFeatures, r = weights.rank
        guard r % 16 == 0, r <= Self.maxRank else {
            throw NunchakuError.unsupported(context: name, reason: "rank \(r): the fast (FP8) path needs a multiple of 16 up to \(Self.maxRank)")
        }
        let columns = lowRankColumns ?? W4A4FastLowRankColumns(offset: 0, total: r)
        guard columns.offset >= 0, columns.offset % 16 == 0, columns.offset + r <= columns.total, columns.total <= Self.maxRank else {
            throw NunchakuError.invalidArgument(
                context: "\(name) low-rank columns",
                reason: "\(r) columns at offset \(columns.offset) of \(columns.total): the offset must be a multiple of 16 and the columns within a total up to \(Self.maxRank)")
        }
        func values(_ tensor: Tensor) -> [Float] {
            let floats = tensor.floats()
            return tensor.dtype == type.dtype ? floats : floats.map { type.roundSaturating($0) }
        }
        let smooth = values(tensors.smooth)
        if let index = smooth.firstIndex(of: 0) {
            throw NunchakuError.invalidArgument(context: "\(name).smooth", reason: "element \(index) is 0 in \(type)")
        }
        let groupScales = weights.precision == .int4 ? values(tensors.wscales) : tensors.wscales.floats()
        let units = Self.weightUnits(groupScales, outFeatures: n, precision: weights.precision)
        var channel = units.map { $0 * weights.wtscale }
        if let wcscales = tensors.wcscales.map(values) {
            if let index = wcscales.firstIndex(where: { $0 == 0 || !$0.isFinite }) {
                throw NunchakuError.invalidArgument(
                    context: "\(name).wcscales",
                    reason: "element \(index) is \(wcscales[index]) in \(type); the fast path folds it into the output scale, which must be finite and non-zero")
            }
            channel = zip(channel, wcscales).map { $0 * $1 }
        }
        let up = values(tensors.projUp)
        var beta = [Float](repeating: .infinity, count: r)
        for row in 0..<n {
            for column in 0..<r where up[row * r + column] != 0 {
                beta[column] = min(beta[column], abs(channel[row]) / abs(up[row * r + column]))
            }
        }
        beta = beta.map { $0.isFinite ? $0 * Self.upCodeTarget : 1 }
        var upCodes = [UInt8](repeating: 0, count: n * r)
        for row in 0..<n {
            for column in 0..<r {
                upCodes[row * r + column] = FloatFormats.e4m3fnBits(up[row * r + column] * beta[column] / channel[row], saturating: true)
            }
        }
        self.name = name
        precision = weights.precision
        inFeatures = k
        outFeatures = n
        rank = r
        self.type = type
        shifted = weights.actUnsigned
        inverseSmooth = smooth.map { 1 / $0 }
        self.groupScales = groupScales
        weightUnits = units
        channelScales = channel
        inverseBeta = beta.map { 1 / $0 }
        self.upCodes = upCodes
        bias = tensors.bias.map(values)
        projDownTransposed = DeviceHalfValues.transposed(values(tensors.projDown), rows: k, columns: r)
        self.lowRankColumns = columns
    }

    /// `u[n]` from the group scales [K/G, N]: INT4 `max_g |s| · 8/448`; NVFP4 the power of two at or above
    /// `max_g |s| · 6/448` (computed in double, so it is never below); 1 for a channel whose scales are all 0.
    static func weightUnits(_ groupScales: [Float], outFeatures n: Int, precision: SVDQuantPrecision) -> [Float] {
        var largest = [Float](repeating: 0, count: n)
        for index in groupScales.indices { largest[index % n] = max(largest[index % n], abs(groupScales[index])) }
        return largest.map { scale in
            guard scale > 0 else { return 1 }
            switch precision {
            case .int4: return scale * (8 / 448)
            case .nvfp4:
                let bound = Double(scale) * 6 / 448
                let exponent = bound.exponent + (bound.significand > 1 ? 1 : 0)
                return Float(sign: .plus, exponent: Int(exponent), significand: 1)
            }
        }
    }

    /// The group size of the 4-bit codes: 64 (INT4) or 16 (NVFP4).
    public var groupSize: Int { precision.groupSize }

    /// The inner dimension of the fast path's single FP8 GEMM: K plus the low-rank columns (R alone), rounded up to
    /// a multiple of 128 (zero codes pad it; cuBLASLt's promoted FP8 accumulation was measured 15% slower on a
    /// ragged K).
    public var gemmDepth: Int { (inFeatures + lowRankColumns.total + 127) / 128 * 128 }

    /// The column of the GEMM rows where this layer's low-rank columns start.
    public var firstLowRankColumn: Int { inFeatures + lowRankColumns.offset }
}

/// The low-rank columns of a fast W4A4 layer's GEMM rows (after its K input columns): `total` columns, of which the
/// layer's own R start at `offset`. Alone a layer has `offset` 0 and `total` R; layers sharing one activation pass
/// (`CUDAW4A4FastSharedInput`) place their ranks one after the other, each with the same `total`.
public struct W4A4FastLowRankColumns: Sendable, Equatable {
    /// Low-rank columns of other layers before this layer's own (a multiple of 16).
    public let offset: Int
    /// All low-rank columns of the rows.
    public let total: Int

    public init(offset: Int, total: Int) {
        self.offset = offset
        self.total = total
    }

    /// The columns of layers of `ranks` sharing one activation pass, in that order.
    public static func shared(ranks: [Int]) -> [W4A4FastLowRankColumns] {
        let total = ranks.reduce(0, +)
        var offset = 0
        return ranks.map { rank in
            defer { offset += rank }
            return W4A4FastLowRankColumns(offset: offset, total: total)
        }
    }
}
