import NunchakuCore
import SVDQuant

/// The host-side constants of one SVDQuant W4A4 layer's fast (FP8) path, for one activation dtype: what the GPU
/// layer uploads and what the CPU reference (`W4A4FastReference`) computes with. docs/hopper.md has the math.
///
/// - Activations are the smoothed input `t = (x [+ 0.171875]) · inverseSmooth`, e4m3 per token; nothing else.
/// - Weights are the layer's dense equivalent in that smoothed space, low-rank branch included, rounded to e4m3 per
///   forward relative to a per-channel unit `u[n]`: `w8[n, k] = e4m3(fma(v, s[g, n] · f[n], L[n, k]) · (1 / u[n]))`
///   with `v` the 4-bit code's value (INT4 `q`; NVFP4 twice the E2M1 value), `s` the group scale, `f[n]` the row
///   factor (`codeFactor · wtscale · wcscales[n]`, codeFactor 1 INT4, 0.5 NVFP4) and `L = projUp · smoothedProjDownᵀ`
///   (fp32 sums). `u[n]` bounds `max_k |W'[n, k]| / 448` from the stored values (`weightUnit`), so no code saturates
///   but by the final rounding; the GEMM's epilogue multiplies by `channelScales[n] = u[n]`.
/// - The low-rank branch sees the smoothed shifted input now, where the exact mode gives it the unshifted x: a
///   shifted layer's bias takes `−0.171875 · Σ_r up[n, r] · Σ_k proj_down[k, r]` (`bias`).
/// - Layers with the same K, shift and smoothing (bit for bit in the type) quantize their input to the same codes,
///   so they may share one activation pass (`CUDAW4A4FastSharedInput`).
public struct W4A4FastParameters: Sendable {
    /// Maximum rank (the expansion kernel keeps 256 rows of `smoothedProjDown` and 128 of `projUp` in shared memory:
    /// 384 · 2R bytes, 192 KiB at R = 256).
    public static let maxRank = 256
    /// The input shift of layers whose exact mode quantizes unsigned (GELU-fed INT4 layers).
    public static let inputShift: Float = 0.171875

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
    /// [N]: `f[n] = codeFactor · wtscale · wcscales[n]` (fp32 products; wcscales 1 when the checkpoint has none).
    public let rowFactors: [Float]
    /// [N]: `1 / u[n]` (0 where `u[n]` is 0: an all-zero row).
    public let inverseUnits: [Float]
    /// [N]: `u[n]`, the epilogue's per-channel scale.
    public let channelScales: [Float]
    /// [N, R]: `proj_up` in `type`.
    public let projUp: [Float]
    /// [K, R]: `round(smooth[k] · proj_down[k, r])` in `type` (`smooth` and `proj_down` in `type` first).
    public let smoothedProjDown: [Float]
    /// [N] in `type`, or nil: the checkpoint's bias, for shifted layers less the shift's low-rank contribution.
    public let bias: [Float]?

    /// Folds `weights` for activations of `type`.
    /// - Throws: `NunchakuError.unsupported` naming the layer for a rank that is not a multiple of 16 or above 256, or
    ///   K not a multiple of 32; `.invalidArgument` naming the tensor when a smoothing factor is 0 in `type`, a row
    ///   factor (`wtscale · wcscales[n]`) is not finite, or a product `smooth · proj_down` is not finite in `type`.
    public init(weights: SVDQW4A4Weights, type: ActivationDType) throws {
        let name = weights.name
        let tensors = weights.canonical
        let n = weights.outFeatures, k = weights.inFeatures, r = weights.rank
        guard r % 16 == 0, r <= Self.maxRank else {
            throw NunchakuError.unsupported(context: name, reason: "rank \(r): the fast (FP8) path needs a multiple of 16 up to \(Self.maxRank)")
        }
        guard k % 32 == 0 else {
            throw NunchakuError.unsupported(context: name, reason: "K = \(k): the fast (FP8) path's weight expansion needs a multiple of 32")
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
        let codeFactor: Float = weights.precision == .int4 ? 1 : 0.5
        let wcscales = tensors.wcscales.map(values) ?? [Float](repeating: 1, count: n)
        let rowFactors = wcscales.map { codeFactor * weights.wtscale * $0 }
        if let index = rowFactors.firstIndex(where: { !$0.isFinite }) {
            throw NunchakuError.invalidArgument(
                context: "\(name).wcscales",
                reason: "element \(index) times wtscale \(weights.wtscale) is \(rowFactors[index]) in fp32; the fast path folds it into the weights")
        }
        let projDown = values(tensors.projDown)
        var smoothed = [Float](repeating: 0, count: k * r)
        for index in smoothed.indices {
            let product = type.round(smooth[index / r] * projDown[index])
            guard product.isFinite else {
                throw NunchakuError.invalidArgument(
                    context: "\(name).proj_down",
                    reason: "element [\(index / r), \(index % r)] times smooth[\(index / r)] is not finite in \(type); the fast path folds the smoothing into it")
            }
            smoothed[index] = product
        }
        let up = values(tensors.projUp)
        let units = Self.weightUnits(groupScales: groupScales, rowFactors: rowFactors, projUp: up, smoothedProjDown: smoothed,
                                     precision: weights.precision)
        var bias = tensors.bias.map(values)
        if weights.actUnsigned, r > 0 {
            var columnSums = [Double](repeating: 0, count: r)
            for index in projDown.indices { columnSums[index % r] += Double(projDown[index]) }
            bias = (0..<n).map { row in
                let shift = (0..<r).reduce(0.0) { $0 + Double(up[row * r + $1]) * columnSums[$1] }
                return type.round(Double(bias?[row] ?? 0) - Double(Self.inputShift) * shift)
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
        self.rowFactors = rowFactors
        inverseUnits = units.map { $0 > 0 ? 1 / $0 : 0 }
        channelScales = units
        projUp = up
        smoothedProjDown = smoothed
        self.bias = bias
    }

    /// `u[n] = Float(bound[n] / 448)` with `bound[n] = maxCode · max_g |s[g, n]| · |f[n]| + Σ_r |up[n, r]| · max_k
    /// |down[k, r]|` in double (maxCode 8 INT4, 12 NVFP4): at least `max_k |W'[n, k]|` / 448 up to the final
    /// rounding, so the folded codes stay within e4m3's ±448.
    static func weightUnits(groupScales: [Float], rowFactors: [Float], projUp: [Float], smoothedProjDown: [Float],
                            precision: SVDQuantPrecision) -> [Float] {
        let n = rowFactors.count, r = n > 0 ? projUp.count / n : 0
        var largestScale = [Double](repeating: 0, count: n)
        for index in groupScales.indices { largestScale[index % n] = max(largestScale[index % n], Double(abs(groupScales[index]))) }
        var largestDown = [Double](repeating: 0, count: r)
        for index in smoothedProjDown.indices { largestDown[index % r] = max(largestDown[index % r], Double(abs(smoothedProjDown[index]))) }
        let maxCode: Double = precision == .int4 ? 8 : 12
        return (0..<n).map { row in
            var bound = maxCode * largestScale[row] * Double(abs(rowFactors[row]))
            for column in 0..<r { bound += Double(abs(projUp[row * r + column])) * largestDown[column] }
            return Float(bound / 448)
        }
    }

    /// The group size of the 4-bit codes: 64 (INT4) or 16 (NVFP4).
    public var groupSize: Int { precision.groupSize }

    /// The inner dimension of the fast path's FP8 GEMM: K rounded up to a multiple of 128 (zero codes pad it;
    /// cuBLASLt's promoted FP8 accumulation was measured 15% slower on a ragged K).
    public var gemmDepth: Int { (inFeatures + 127) / 128 * 128 }
}
