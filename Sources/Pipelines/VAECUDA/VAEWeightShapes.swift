extension VAEConfig {
    /// Every decoder tensor (diffusers names and shapes) of an AutoencoderKL with this config, for random-weight
    /// decoders: `post_quant_conv` when the config has it, then `decoder.*` in the layout the decoders load.
    public var decoderWeightShapes: [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        func conv(_ name: String, _ inputs: Int, _ outputs: Int, _ kernel: Int) {
            shapes["\(name).weight"] = [outputs, inputs, kernel, kernel]
            shapes["\(name).bias"] = [outputs]
        }
        func norm(_ name: String, _ channels: Int) {
            shapes["\(name).weight"] = [channels]
            shapes["\(name).bias"] = [channels]
        }
        func resnet(_ name: String, _ inputs: Int, _ outputs: Int) {
            norm("\(name).norm1", inputs)
            conv("\(name).conv1", inputs, outputs, 3)
            norm("\(name).norm2", outputs)
            conv("\(name).conv2", outputs, outputs, 3)
            if inputs != outputs { conv("\(name).conv_shortcut", inputs, outputs, 1) }
        }
        let widths = Array(blockOutChannels.reversed())
        if usePostQuantConv { conv("post_quant_conv", latentChannels, latentChannels, 1) }
        conv("decoder.conv_in", latentChannels, widths[0], 3)
        resnet("decoder.mid_block.resnets.0", widths[0], widths[0])
        if midBlockAddAttention {
            let name = "decoder.mid_block.attentions.0"
            norm("\(name).group_norm", widths[0])
            for part in ["to_q", "to_k", "to_v", "to_out.0"] {
                shapes["\(name).\(part).weight"] = [widths[0], widths[0]]
                shapes["\(name).\(part).bias"] = [widths[0]]
            }
        }
        resnet("decoder.mid_block.resnets.1", widths[0], widths[0])
        for index in widths.indices {
            for layer in 0...layersPerBlock {
                resnet("decoder.up_blocks.\(index).resnets.\(layer)", layer == 0 ? widths[max(index - 1, 0)] : widths[index], widths[index])
            }
            if index < widths.count - 1 { conv("decoder.up_blocks.\(index).upsamplers.0.conv", widths[index], widths[index], 3) }
        }
        norm("decoder.conv_norm_out", widths.last!)
        conv("decoder.conv_out", widths.last!, outChannels, 3)
        return shapes
    }
}
