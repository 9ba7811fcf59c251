import CPUBackend
import NunchakuCore

/// An AWQ W4A16 linear (FLUX adaLN modulation layers) in the canonical layout: unsigned 4-bit codes with an
/// asymmetric per-(group of 64, output channel) scale and offset. The runtime computes
/// `w[n][k] = codes[n][k] · scales[k/64][n] + zeros[k/64][n]` (research §1.3).
///
/// Rows are in the original output order, and `bias` is the layer's own bias: the adaLN row interleave and the
/// "+1" folded into the scale chunks (§2.7) belong to the packer.
public struct QuantizedAWQLinear: Sendable {
    public let name: String
    /// N.
    public let outFeatures: Int
    /// K.
    public let inFeatures: Int
    /// [N, K] codes in 0...15.
    public let codes: [UInt8]
    /// [K/64, N], bf16-representable.
    public let scales: [Float]
    /// [K/64, N], bf16-representable: the additive offset, i.e. the checkpoint's `wzeros` (= −zero_point · scale).
    public let zeros: [Float]
    /// [N] (zeros when the layer had none).
    public let bias: [Float]
    /// ‖W_q − W‖_F / ‖W‖_F.
    public internal(set) var relativeWeightError: Double

    /// The weight the runtime reconstructs, [N, K].
    public func dequantizedWeight() -> [Float] {
        var weight = [Float](repeating: 0, count: codes.count)
        for row in 0..<outFeatures {
            for column in 0..<inFeatures {
                let group = (column / AWQQuantizer.groupSize) * outFeatures + row
                weight[row * inFeatures + column] = Float(codes[row * inFeatures + column]) * scales[group] + zeros[group]
            }
        }
        return weight
    }
}

/// Asymmetric round-to-nearest W4A16 quantization, group 64 along K.
///
/// Per group: offset = bf16(min), scale = bf16((max − offset) / 15) (1 when that is 0),
/// code = clamp(round_half_even((w − offset) / scale), 0, 15). The 16 levels therefore span the group's own range,
/// which is at least as accurate as DeepCompressor's symmetric `sint4` with zero point 7 and fits the same format.
public enum AWQQuantizer {
    /// The group size along K; hard-wired in the runtime's GEMV kernel.
    public static let groupSize = 64

    /// Quantizes the layer `name` with `weight` [outFeatures, inFeatures] and optional `bias` [outFeatures].
    /// - Throws: `NunchakuError` naming the layer when K is not a multiple of 64, N not a multiple of 4 (the runtime's
    ///   interleave), a size does not match, or a value is NaN/Inf.
    public static func quantize(
        name: String, weight: [Float], outFeatures: Int, inFeatures: Int, bias: [Float]? = nil
    ) throws -> QuantizedAWQLinear {
        try LayerValidation.validateAWQ(
            name: name, weight: weight, outFeatures: outFeatures, inFeatures: inFeatures, bias: bias)
        let groups = inFeatures / groupSize
        var codes = [UInt8](repeating: 0, count: weight.count)
        var scales = [Float](repeating: 0, count: groups * outFeatures)
        var zeros = [Float](repeating: 0, count: groups * outFeatures)
        weight.withUnsafeBufferPointer { weight in
            codes.withUnsafeMutableBufferPointer { codes in
                scales.withUnsafeMutableBufferPointer { scales in
                    zeros.withUnsafeMutableBufferPointer { zeros in
                        parallelFor(outFeatures) { row in
                            for group in 0..<groups {
                                let start = row * inFeatures + group * groupSize
                                let (scale, offset) = quantizeGroup(weight, start..<(start + groupSize), codes)
                                scales[group * outFeatures + row] = scale
                                zeros[group * outFeatures + row] = offset
                            }
                        }
                    }
                }
            }
        }
        var result = QuantizedAWQLinear(
            name: name, outFeatures: outFeatures, inFeatures: inFeatures, codes: codes, scales: scales, zeros: zeros,
            bias: bias ?? [Float](repeating: 0, count: outFeatures), relativeWeightError: 0)
        result.relativeWeightError = relativeDifference(result.dequantizedWeight(), weight)
        return result
    }

    private static func quantizeGroup(
        _ weight: UnsafeBufferPointer<Float>, _ range: Range<Int>, _ codes: UnsafeMutableBufferPointer<UInt8>
    ) -> (scale: Float, offset: Float) {
        var low = Float.infinity, high = -Float.infinity
        for index in range {
            low = min(low, weight[index])
            high = max(high, weight[index])
        }
        // The span is measured from the rounded offset, so a group far from zero still fits in 16 levels.
        let offset = WeightQuantizer.bf16(low)
        var scale = WeightQuantizer.bf16(max(high - offset, 0) / 15)
        if scale == 0 { scale = 1 }
        for index in range {
            codes[index] = UInt8(min(max(((weight[index] - offset) / scale).rounded(.toNearestOrEven), 0), 15))
        }
        return (scale, offset)
    }
}

/// ‖a − b‖_F / ‖b‖_F in `Double` (0 when both are zero).
func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
    var difference = 0.0, reference = 0.0
    for index in a.indices {
        let delta = Double(a[index]) - Double(b[index])
        difference += delta * delta
        reference += Double(b[index]) * Double(b[index])
    }
    return reference == 0 ? (difference == 0 ? 0 : .infinity) : (difference / reference).squareRoot()
}
