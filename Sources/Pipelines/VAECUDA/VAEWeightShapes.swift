extension VAEConfig {
    /// Every decoder tensor (diffusers names and shapes) of an AutoencoderKL with this config, for random-weight
    /// decoders: `post_quant_conv` when the config has it, then `decoder.*` in the layout the decoders load.
    public var decoderWeightShapes: [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        func conv(_ spec: VAEDecoderLayout.Conv) {
            shapes["\(spec.name).weight"] = [spec.outChannels, spec.inChannels, spec.kernel, spec.kernel]
            shapes["\(spec.name).bias"] = [spec.outChannels]
        }
        func norm(_ name: String, _ channels: Int) {
            shapes["\(name).weight"] = [channels]
            shapes["\(name).bias"] = [channels]
        }
        func resnet(_ spec: VAEDecoderLayout.Resnet) {
            let (name, inputs, outputs) = (spec.name, spec.inChannels, spec.outChannels)
            norm("\(name).norm1", inputs)
            conv(.init(name: "\(name).conv1", inChannels: inputs, outChannels: outputs, kernel: 3))
            norm("\(name).norm2", outputs)
            conv(.init(name: "\(name).conv2", inChannels: outputs, outChannels: outputs, kernel: 3))
            if inputs != outputs { conv(.init(name: "\(name).conv_shortcut", inChannels: inputs, outChannels: outputs, kernel: 1)) }
        }
        let layout = VAEDecoderLayout(self)
        layout.postQuantConv.map(conv)
        conv(layout.convIn)
        resnet(layout.midResnets.first)
        if let (name, channels) = layout.midAttention {
            norm("\(name).group_norm", channels)
            for part in ["to_q", "to_k", "to_v", "to_out.0"] {
                shapes["\(name).\(part).weight"] = [channels, channels]
                shapes["\(name).\(part).bias"] = [channels]
            }
        }
        resnet(layout.midResnets.second)
        for block in layout.upBlocks {
            block.resnets.forEach(resnet)
            block.upsample.map(conv)
        }
        norm(layout.normOut.name, layout.normOut.channels)
        conv(layout.convOut)
        return shapes
    }
}
