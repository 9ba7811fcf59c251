import Models
import NunchakuCore

/// diffusers' `ResnetBlock2D` without a time embedding, as the VAE decoder uses it:
/// `h = conv1(SiLU(norm1(x)))`, `h = conv2(SiLU(norm2(h)))`, `out = shortcut(x) + h`, where the shortcut is a 1×1
/// `conv_shortcut` when the channel count changes and the identity otherwise.
struct VAEResnetBlock {
    let norm1: VAEGroupNorm
    let conv1: VAEConv2d
    let norm2: VAEGroupNorm
    let conv2: VAEConv2d
    let shortcut: VAEConv2d?

    /// Reads `<name>.{norm1, conv1, norm2, conv2}` and, when `inChannels != outChannels`, `<name>.conv_shortcut`.
    init(_ name: String, inChannels: Int, outChannels: Int, groups: Int, weights: WeightReader, precision: VAEPrecision) throws {
        norm1 = try VAEGroupNorm("\(name).norm1", groups: groups, channels: inChannels, weights: weights, precision: precision)
        conv1 = try VAEConv2d("\(name).conv1", inChannels: inChannels, outChannels: outChannels, kernel: 3, weights: weights, precision: precision)
        norm2 = try VAEGroupNorm("\(name).norm2", groups: groups, channels: outChannels, weights: weights, precision: precision)
        conv2 = try VAEConv2d("\(name).conv2", inChannels: outChannels, outChannels: outChannels, kernel: 3, weights: weights, precision: precision)
        shortcut = inChannels == outChannels ? nil : try VAEConv2d(
            "\(name).conv_shortcut", inChannels: inChannels, outChannels: outChannels, kernel: 1, weights: weights, precision: precision)
    }

    func callAsFunction(_ x: FeatureMap, precision: VAEPrecision) throws -> FeatureMap {
        var h = try conv1(norm1(x, thenSiLU: true, precision: precision), precision: precision)
        h = try conv2(norm2(h, thenSiLU: true, precision: precision), precision: precision)
        let residual = try shortcut.map { try $0(x, precision: precision) } ?? x
        return residual.adding(h, precision: precision)
    }
}
