import Models
import NunchakuCore

/// The decoder half of diffusers' `AutoencoderKL` (the FLUX.1 and Stable Diffusion VAEs) on the CPU: latents
/// `[B, latent_channels, h, w]` → images `[B, out_channels, f·h, f·w]` in about [-1, 1], f = 2^(blocks − 1) (8 for FLUX).
///
/// Layers, in order: `post_quant_conv` (1×1, only when the config says so; FLUX has none), `conv_in` (3×3), the mid
/// block (resnet, single-head self-attention, resnet), the up blocks (`layers_per_block + 1` resnets each, all but
/// the last followed by nearest ×2 upsampling and a 3×3 conv), then GroupNorm + SiLU + `conv_out`. GroupNorms have
/// `norm_num_groups` groups and eps 1e-6. Sizes all come from the config.
public struct AutoencoderKLDecoder: Sendable {
    public let config: VAEConfig
    /// The dtype the decoder computes in and returns (`.f32` or `.bf16`).
    public var computeDType: DType { precision.dtype }
    private let precision: VAEPrecision
    private let postQuantConv: VAEConv2d?
    private let convIn: VAEConv2d
    private let midBlock: [MidLayer]
    private let upBlocks: [UpBlock]
    private let normOut: VAEGroupNorm
    private let convOut: VAEConv2d

    private enum MidLayer {
        case resnet(VAEResnetBlock)
        case attention(VAEAttentionBlock)
    }

    private struct UpBlock {
        let resnets: [VAEResnetBlock]
        let upsampleConv: VAEConv2d?
    }

    /// Builds the decoder from diffusers-named weights (`decoder.*`, `post_quant_conv.*`), strictly: every missing,
    /// mis-shaped or unused tensor is listed in one `WeightLoadingError`. Encoder tensors (`encoder.*`,
    /// `quant_conv.*`) of a full AutoencoderKL checkpoint are ignored; legacy attention names are accepted.
    /// - Parameters:
    ///   - computeDType: `.f32` or `.bf16`; parameters are rounded to it.
    ///   - source: names the weights in errors.
    public init(config: VAEConfig, weights: any TensorProvider, computeDType: DType = .f32, source: String = "weights") throws {
        try config.validate(source: source)
        let precision = try VAEPrecision(computeDType)
        let reader = WeightReader(VAEDecoderWeights(weights), source: source)
        let layout = VAEDecoderLayout(config)
        self.config = config
        self.precision = precision
        func conv(_ spec: VAEDecoderLayout.Conv) throws -> VAEConv2d {
            try VAEConv2d(spec.name, inChannels: spec.inChannels, outChannels: spec.outChannels, kernel: spec.kernel,
                          weights: reader, precision: precision)
        }
        func resnet(_ spec: VAEDecoderLayout.Resnet) throws -> VAEResnetBlock {
            try VAEResnetBlock(spec.name, inChannels: spec.inChannels, outChannels: spec.outChannels, groups: layout.groups,
                               weights: reader, precision: precision)
        }
        postQuantConv = try layout.postQuantConv.map(conv)
        convIn = try conv(layout.convIn)
        var mid = [MidLayer.resnet(try resnet(layout.midResnets.first))]
        if let attention = layout.midAttention {
            mid.append(.attention(try VAEAttentionBlock(
                attention.name, channels: attention.channels, groups: layout.groups, weights: reader, precision: precision)))
        }
        mid.append(.resnet(try resnet(layout.midResnets.second)))
        midBlock = mid
        upBlocks = try layout.upBlocks.map { block in
            UpBlock(resnets: try block.resnets.map(resnet), upsampleConv: try block.upsample.map(conv))
        }
        normOut = try VAEGroupNorm(layout.normOut.name, groups: layout.groups, channels: layout.normOut.channels, weights: reader, precision: precision)
        convOut = try conv(layout.convOut)
        try reader.finish()
    }

    /// Decodes latents in the VAE's own space (`[B, latent_channels, h, w]`, any float dtype) to images
    /// `[B, out_channels, f·h, f·w]` of `computeDType`, nominally in [-1, 1].
    /// - Throws: `NunchakuError` when the latents' rank, channels or dtype do not fit.
    public func decode(_ latents: Tensor) throws -> Tensor {
        try decode(latents, transform: { $0 })
    }

    /// Decodes latents as the diffusion model produces them (FLUX: unpacked to `[B, 16, h, w]`): first
    /// `z = latents / scaling_factor + shift_factor` (each step rounded to the compute dtype), then `decode`.
    public func decode(diffusionLatents latents: Tensor) throws -> Tensor {
        let scaling = Float(config.scalingFactor), shift = Float(config.shiftFactor ?? 0)
        return try decode(latents, transform: { precision.round(precision.round($0 / scaling) + shift) })
    }

    private func decode(_ latents: Tensor, transform: (Float) -> Float) throws -> Tensor {
        let context = "AutoencoderKLDecoder latents"
        guard latents.rank == 4, latents.shape[1] == config.latentChannels, latents.shape[2] > 0, latents.shape[3] > 0 else {
            throw NunchakuError.invalidArgument(
                context: context, reason: "expected [batch, \(config.latentChannels), height, width], got shape \(latents.shape)")
        }
        let (batch, channels, height, width) = (latents.shape[0], latents.shape[1], latents.shape[2], latents.shape[3])
        let values = try latents.floatValues(context: context)
        let factor = config.upsamplingFactor, outChannels = config.outChannels
        let plane = factor * height * factor * width
        var images = [Float](repeating: 0, count: batch * outChannels * plane)
        for sample in 0..<batch {
            var map = FeatureMap(height: height, width: width, channels: channels, values: .init(repeating: 0, count: height * width * channels))
            for channel in 0..<channels {
                for pixel in 0..<(height * width) {
                    map.values[pixel * channels + channel] = precision.round(transform(precision.round(values[(sample * channels + channel) * height * width + pixel])))
                }
            }
            let image = try forward(map)
            for channel in 0..<outChannels {
                for pixel in 0..<plane {
                    images[(sample * outChannels + channel) * plane + pixel] = image.values[pixel * outChannels + channel]
                }
            }
        }
        return Tensor.rounding(images, shape: [batch, outChannels, factor * height, factor * width], to: precision.dtype)
    }

    /// One sample through every layer.
    private func forward(_ latent: FeatureMap) throws -> FeatureMap {
        var x = try postQuantConv.map { try $0(latent, precision: precision) } ?? latent
        x = try convIn(x, precision: precision)
        for layer in midBlock {
            switch layer {
            case let .resnet(block): x = try block(x, precision: precision)
            case let .attention(block): x = try block(x, precision: precision)
            }
        }
        for block in upBlocks {
            for resnet in block.resnets { x = try resnet(x, precision: precision) }
            if let conv = block.upsampleConv { x = try conv(x.upsampledNearest2x(), precision: precision) }
        }
        return try convOut(normOut(x, thenSiLU: true, precision: precision), precision: precision)
    }
}
