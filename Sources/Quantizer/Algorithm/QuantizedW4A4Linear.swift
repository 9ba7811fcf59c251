import NunchakuCore

/// One trial of the smoothing search.
public struct SmoothingTrial: Sendable, Equatable {
    /// nil for the identity (no smoothing).
    public let alpha: Double?
    /// The objective's relative error with this smoothing (and a one-round low-rank branch when rank > 0).
    public let error: Double
}

/// How a layer was quantized and how well.
public struct W4A4QuantizationReport: Sendable {
    public let smoothingSource: SmoothingSource
    /// The chosen α; nil when the identity won or smoothing was off.
    public let alpha: Double?
    /// Every smoothing candidate tried, in order.
    public let smoothingTrials: [SmoothingTrial]
    /// The objective after each low-rank round (empty when rank = 0).
    public let lowRankRoundErrors: [Double]
    /// The objective of the returned layer: relative output error on the calibration rows, or relative weight
    /// error when the smoothing came from the weights only.
    public let relativeError: Double
    /// Things the caller should know (e.g. that no calibration activations were given).
    public let notes: [String]
}

/// A quantized SVDQuant W4A4 linear in the canonical (logical, unpacked, row-major) layout.
///
/// The runtime computes `y = Q(x̃ / smooth) · (codes · wscales · wtscale)ᵀ + x · projDown · projUpᵀ + bias`, where
/// `x̃ = x + 0.171875` when `activationsUnsigned` (INT4 post-GELU inputs, quantized unsigned) and `x̃ = x` otherwise.
public struct QuantizedW4A4Linear: Sendable {
    public let name: String
    public let format: W4A4Format
    /// N.
    public let outFeatures: Int
    /// K.
    public let inFeatures: Int
    /// R (0 when the layer has no low-rank branch).
    public let rank: Int
    /// `qweight`: [N, K] codes.
    public let codes: QuantizedCodes
    /// `wscales`: [K/G, N]; INT4 bf16-representable scales, NVFP4 fp8 e4m3 values.
    public let wscales: [Float]
    /// `wtscale`: NVFP4's per-tensor scale (bf16-representable); 1 for INT4.
    public let wtscale: Float
    /// `smooth` / `smooth_factor`: [K] bf16-representable divisors of the input (also `smooth_orig`).
    public let smooth: [Float]
    /// `lora_down` / `proj_down`: [K, R], applied to the unsmoothed, unshifted input.
    public let projDown: [Float]
    /// `lora_up` / `proj_up`: [N, R].
    public let projUp: [Float]
    /// `bias`: [N]; for shifted inputs it is `b − W·c + projUp·projDownᵀ·c` (c = 0.171875, research §3.6).
    public let bias: [Float]
    /// The runtime must quantize this layer's input as `act_unsigned` after adding 0.171875 (INT4 post-GELU).
    public let activationsUnsigned: Bool
    public let report: W4A4QuantizationReport

    /// The shift the runtime adds to the input before smoothing and quantization.
    public var inputShift: Float { activationsUnsigned ? postGELUShift : 0 }

    /// The main-branch weight the runtime reconstructs from codes and scales, [N, K] in smoothed coordinates.
    public func dequantizedResidual() -> [Float] {
        let groupSize = format.groupSize
        var weight = [Float](repeating: 0, count: outFeatures * inFeatures)
        for row in 0..<outFeatures {
            for column in 0..<inFeatures {
                let index = row * inFeatures + column
                let scale = wscales[(column / groupSize) * outFeatures + row]
                switch codes {
                case let .int4(values): weight[index] = Float(values[index]) * scale
                case let .e2m1(values): weight[index] = FloatFormats.float(e2m1: values[index]) * scale * wtscale
                }
            }
        }
        return weight
    }
}
