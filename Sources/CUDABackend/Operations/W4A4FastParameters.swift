import NunchakuCore
import SVDQuant

/// The host-side constants of one INT4 SVDQuant layer's fast (FP8) path, for one activation dtype: what the GPU
/// layer uploads and what the CPU reference (`W4A4FastReference`) computes with. docs/hopper.md has the math.
///
/// - The INT4 weight codes stay 4-bit; at run time each 64-group's codes become e4m3 `q · (s[g, n] / c[n])` with
///   the per-channel scale `c[n] = max_g |s[g, n]| · 8/448`, so `|q · s/c| ≤ 448`; `c[n]` is applied in the GEMM's
///   epilogue (1 for a channel whose scales are all 0).
/// - The low-rank branch rides in the same GEMM as R extra K columns: activations `lowRank[m, r] / beta[r]`,
///   weights `e4m3(proj_up[n, r] · beta[r] / c[n])` (made here), with `beta[r] = 256 · min_n c[n] / |proj_up[n, r]|`
///   so the weight codes stay ≤ 256 in magnitude.
public struct W4A4FastParameters: Sendable {
    /// Largest |code| of the folded low-rank weights (leaves headroom under e4m3's 448).
    public static let upCodeTarget: Float = 256
    /// Maximum rank: the quantize kernel gives one thread (of 256) to each low-rank value.
    public static let maxRank = 256

    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    public let rank: Int
    public let type: ActivationDType
    /// The layer's exact mode quantizes unsigned after adding 0.171875: the fast mode adds it too (in fp32).
    public let shifted: Bool
    /// [K]: `1 / smooth` (IEEE fp32 division of the smoothing factors rounded to `type`).
    public let inverseSmooth: [Float]
    /// [K/64, N]: the INT4 group scales rounded to `type`.
    public let groupScales: [Float]
    /// [N]: `c[n]`.
    public let channelScales: [Float]
    /// [R]: `1 / beta[r]`.
    public let inverseBeta: [Float]
    /// [N, R]: e4m3 codes of `proj_up · beta / c`.
    public let upCodes: [UInt8]
    /// [N] in `type`, or nil.
    public let bias: [Float]?
    /// [R, K]: `proj_down` transposed, in `type` (the rows of the low-rank GEMM's weight).
    public let projDownTransposed: [Float]

    /// Folds `weights` for activations of `type`.
    /// - Throws: `NunchakuError.unsupported` naming the layer for NVFP4 weights, INT4 weights with `wcscales`, or a
    ///   rank that is not a multiple of 16 or above 256; `.invalidArgument` when a smoothing factor is 0 in `type`.
    public init(weights: SVDQW4A4Weights, type: ActivationDType) throws {
        let name = weights.name
        guard weights.precision == .int4 else {
            throw NunchakuError.unsupported(context: name, reason: "the fast (FP8) path runs INT4 layers; this one is \(weights.precision)")
        }
        let tensors = weights.canonical
        guard tensors.wcscales == nil else {
            throw NunchakuError.unsupported(context: "\(name).wcscales", reason: "the fast (FP8) path has no per-channel wcscales for INT4 layers")
        }
        let n = weights.outFeatures, k = weights.inFeatures, r = weights.rank
        guard r % 16 == 0, r <= Self.maxRank else {
            throw NunchakuError.unsupported(context: name, reason: "rank \(r): the fast (FP8) path needs a multiple of 16 up to \(Self.maxRank)")
        }
        func values(_ tensor: Tensor) -> [Float] {
            let floats = tensor.floats()
            return tensor.dtype == type.dtype ? floats : floats.map { type.roundSaturating($0) }
        }
        let smooth = values(tensors.smooth)
        if let index = smooth.firstIndex(of: 0) {
            throw NunchakuError.invalidArgument(context: "\(name).smooth", reason: "element \(index) is 0 in \(type)")
        }
        let groupScales = values(tensors.wscales)
        var channel = [Float](repeating: 0, count: n)
        for index in groupScales.indices { channel[index % n] = max(channel[index % n], abs(groupScales[index])) }
        channel = channel.map { $0 > 0 ? $0 * (8 / 448) : 1 }
        let up = values(tensors.projUp)
        var beta = [Float](repeating: .infinity, count: r)
        for row in 0..<n {
            for column in 0..<r where up[row * r + column] != 0 {
                beta[column] = min(beta[column], channel[row] / abs(up[row * r + column]))
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
        inFeatures = k
        outFeatures = n
        rank = r
        self.type = type
        shifted = weights.actUnsigned
        inverseSmooth = smooth.map { 1 / $0 }
        self.groupScales = groupScales
        channelScales = channel
        inverseBeta = beta.map { 1 / $0 }
        self.upCodes = upCodes
        bias = tensors.bias.map(values)
        projDownTransposed = DeviceHalfValues.transposed(values(tensors.projDown), rows: k, columns: r)
    }

    /// The inner dimension of the fast path's single FP8 GEMM: K + R rounded up to a multiple of 128 (zero codes
    /// pad it; cuBLASLt's promoted FP8 accumulation was measured 15% slower on a ragged K).
    public var gemmDepth: Int { (inFeatures + rank + 127) / 128 * 128 }
}
