import CPUBackend
import NunchakuCore

/// An AWQ W4A16 linear on the CPU, emulating Nunchaku's `gemv_awq` (research/nunchaku-internals.md §3.9):
/// weights dequantized in the activation dtype as `hfma(q, wscale, wzero)`, products `hmul(w, x)` rounded to the
/// 16-bit type and summed in fp32, the sum rounded to the 16-bit type, then `+ bias` (one rounding).
/// The GPU sums in a different order (per-thread partial sums, then a warp reduction), so results can differ in the
/// last bit of the fp32 sum.
///
/// Outputs stay in the weights' channel order (natural, with the folded "+1" of modulation layers: see
/// `AWQW4A16Weights`). Activations are bf16 or f16 [..., K].
public struct AWQW4A16Linear: LinearLayer {
    public let weights: AWQW4A16Weights
    /// Scales and zeros as [N, K/64] values of the weight dtype (transposed for the loops), and the bias.
    private let scales: [Float], zeros: [Float], bias: [Float]?

    public var name: String { weights.name }
    public var inFeatures: Int { weights.inFeatures }
    public var outFeatures: Int { weights.outFeatures }

    public init(weights: AWQW4A16Weights) {
        let groups = weights.inFeatures / weights.groupSize
        self.weights = weights
        scales = Matmul.transpose(TensorValues.floats(weights.canonical.wscales), rows: groups, columns: weights.outFeatures)
        zeros = Matmul.transpose(TensorValues.floats(weights.canonical.wzeros), rows: groups, columns: weights.outFeatures)
        bias = weights.canonical.bias.map(TensorValues.floats)
    }

    /// Output channels per job (their weights are dequantized once per job).
    private static let channelsPerJob = 16

    public func forward(_ x: Tensor) throws -> Tensor {
        let rows = try LinearInput.rows(x, inFeatures: inFeatures, layer: name, allowed: [.bf16, .f16])
        let type = ActivationDType(x.dtype)!
        func converted(_ values: [Float]) -> [Float] {
            type == weights.weightDType ? values : values.map { type.roundSaturating($0) }
        }
        let scales = converted(self.scales), zeros = converted(self.zeros), bias = self.bias.map(converted)
        let input = TensorValues.floats(x)
        let n = outFeatures, k = inFeatures, groups = k / weights.groupSize
        var output = [Float](repeating: 0, count: rows * n)
        let jobs = (n + Self.channelsPerJob - 1) / Self.channelsPerJob
        weights.canonical.qweight.withUnsafeBytes { codes in
            output.withUnsafeMutableBufferPointer { output in
                parallelFor(jobs) { job in
                    var dequantized = [Float](repeating: 0, count: k)
                    var levels = [Float](repeating: 0, count: 16)
                    for channel in (job * Self.channelsPerJob)..<min(n, (job + 1) * Self.channelsPerJob) {
                        for group in 0..<groups {
                            // The 16 values a code can dequantize to in this group.
                            let scale = scales[channel * groups + group], zero = zeros[channel * groups + group]
                            for code in 0..<16 { levels[code] = type.fusedMultiplyAdd(Float(code), scale, zero) }
                            for column in (group * weights.groupSize)..<((group + 1) * weights.groupSize) {
                                let byte = codes[(channel * k + column) / 2]
                                dequantized[column] = levels[Int(column % 2 == 0 ? byte & 0xF : byte >> 4)]
                            }
                        }
                        for row in 0..<rows {
                            var sum: Float = 0
                            for column in 0..<k { sum += type.round(dequantized[column] * input[row * k + column]) }
                            var y = type.round(sum)
                            if let bias { y = type.round(y + bias[channel]) }
                            output[row * n + channel] = y
                        }
                    }
                }
            }
        }
        return TensorValues.tensor(output, shape: LinearInput.outputShape(x, outFeatures: n), dtype: type.dtype)
    }
}
