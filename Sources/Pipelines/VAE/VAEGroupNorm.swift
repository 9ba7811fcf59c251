import CPUBackend
import Foundation
import Models
import NunchakuCore

/// `nn.GroupNorm(groups, channels, eps, affine=True)` on a channels-last feature map, optionally followed by SiLU
/// (the pre-activation `SiLU(GroupNorm(x))` of the VAE's resnets and output head).
///
/// Per group: mean, then the biased variance of the centred values, both accumulated in `Double` over the group's
/// channels of every pixel; `y = (x − mean) / √(var + eps) · γ + β`.
struct VAEGroupNorm {
    let name: String
    let groups: Int
    let channels: Int
    let eps: Double
    private let gamma: [Float]
    private let beta: [Float]

    /// Reads `<name>.weight` and `<name>.bias`, both `[channels]`.
    init(_ name: String, groups: Int, channels: Int, eps: Double = 1e-6, weights: WeightReader, precision: VAEPrecision) throws {
        self.name = name
        self.groups = groups
        self.channels = channels
        self.eps = eps
        gamma = try parameterValues(weights, "\(name).weight", shape: [channels], precision)
        beta = try parameterValues(weights, "\(name).bias", shape: [channels], precision)
    }

    func callAsFunction(_ input: FeatureMap, thenSiLU: Bool, precision: VAEPrecision) throws -> FeatureMap {
        guard input.channels == channels else {
            throw NunchakuError.invalidArgument(context: name, reason: "expects \(channels) channels, got \(input.channels)")
        }
        let groupWidth = channels / groups
        let count = Double(input.pixelCount * groupWidth)
        let means = groupSums(input) { value, _ in value }.map { $0 / count }
        let variances = groupSums(input) { value, group in (value - means[group]) * (value - means[group]) }.map { $0 / count }
        let inverseDeviations = variances.map { 1 / ($0 + eps).squareRoot() }
        var output = [Float](repeating: 0, count: input.values.count)
        input.values.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { output in
                forChunks(of: input.pixelCount) { pixels in
                    for pixel in pixels {
                        for channel in 0..<channels {
                            let group = channel / groupWidth, index = pixel * channels + channel
                            let normalized = (Double(source[index]) - means[group]) * inverseDeviations[group]
                            var value = precision.round(Float(normalized * Double(gamma[channel]) + Double(beta[channel])))
                            if thenSiLU { value = precision.round(Float(Double(value) / (1 + exp(-Double(value))))) }
                            output[index] = value
                        }
                    }
                }
            }
        }
        return FeatureMap(height: input.height, width: input.width, channels: channels, values: output)
    }

    /// Σ term(x, group) over each group's elements, in `Double`, summed per pixel chunk on all cores.
    private func groupSums(_ input: FeatureMap, _ term: (Double, Int) -> Double) -> [Double] {
        let groupWidth = channels / groups
        let chunkCount = max(1, min(input.pixelCount / 256, 4 * Environment.processorCount))
        let chunkSize = (input.pixelCount + chunkCount - 1) / chunkCount
        var partials = [Double](repeating: 0, count: chunkCount * groups)
        input.values.withUnsafeBufferPointer { source in
            partials.withUnsafeMutableBufferPointer { partials in
                parallelFor(chunkCount) { chunk in
                    for pixel in (chunk * chunkSize)..<min(input.pixelCount, (chunk + 1) * chunkSize) {
                        for channel in 0..<channels {
                            let group = channel / groupWidth
                            partials[chunk * groups + group] += term(Double(source[pixel * channels + channel]), group)
                        }
                    }
                }
            }
        }
        return (0..<groups).map { group in (0..<chunkCount).reduce(0) { $0 + partials[$1 * groups + group] } }
    }
}
