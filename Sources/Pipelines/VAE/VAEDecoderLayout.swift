/// The AutoencoderKL decoder's layers as a config lays them out: diffusers names and channel counts, in order. The
/// CPU `AutoencoderKLDecoder` and the GPU `CUDAAutoencoderKLDecoder` both build their layers from it, so the
/// architecture is written down once.
struct VAEDecoderLayout {
    struct Conv {
        let name: String
        let inChannels: Int
        let outChannels: Int
        let kernel: Int
    }

    struct Resnet {
        let name: String
        let inChannels: Int
        let outChannels: Int
    }

    struct UpBlock {
        let resnets: [Resnet]
        /// Nearest ×2 upsampling followed by this conv; nil for the last block.
        let upsample: Conv?
    }

    /// GroupNorm groups of every norm.
    let groups: Int
    let postQuantConv: Conv?
    let convIn: Conv
    /// The mid block: `resnets.0`, the optional single-head attention, `resnets.1`.
    let midResnets: (first: Resnet, second: Resnet)
    let midAttention: (name: String, channels: Int)?
    let upBlocks: [UpBlock]
    let normOut: (name: String, channels: Int)
    let convOut: Conv

    init(_ config: VAEConfig) {
        let widths = Array(config.blockOutChannels.reversed())
        let latent = config.latentChannels
        groups = config.normNumGroups
        postQuantConv = config.usePostQuantConv ? Conv(name: "post_quant_conv", inChannels: latent, outChannels: latent, kernel: 1) : nil
        convIn = Conv(name: "decoder.conv_in", inChannels: latent, outChannels: widths[0], kernel: 3)
        midResnets = (Resnet(name: "decoder.mid_block.resnets.0", inChannels: widths[0], outChannels: widths[0]),
                      Resnet(name: "decoder.mid_block.resnets.1", inChannels: widths[0], outChannels: widths[0]))
        midAttention = config.midBlockAddAttention ? ("decoder.mid_block.attentions.0", widths[0]) : nil
        upBlocks = widths.indices.map { index in
            let name = "decoder.up_blocks.\(index)"
            let resnets = (0...config.layersPerBlock).map { layer in
                Resnet(name: "\(name).resnets.\(layer)", inChannels: layer == 0 ? widths[max(index - 1, 0)] : widths[index],
                       outChannels: widths[index])
            }
            let upsample = index == widths.count - 1
                ? nil : Conv(name: "\(name).upsamplers.0.conv", inChannels: widths[index], outChannels: widths[index], kernel: 3)
            return UpBlock(resnets: resnets, upsample: upsample)
        }
        normOut = ("decoder.conv_norm_out", widths[widths.count - 1])
        convOut = Conv(name: "decoder.conv_out", inChannels: widths[widths.count - 1], outChannels: config.outChannels, kernel: 3)
    }
}
