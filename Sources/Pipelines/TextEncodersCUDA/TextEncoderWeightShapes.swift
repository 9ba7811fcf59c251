/// The tensors (names and shapes, as transformers 5 saves them) of the text encoders, for random-weight models.
extension CLIPTextConfig {
    /// Every tensor of a CLIP text model with this config (`embeddings.…`, `encoder.layers.{i}.…`, `final_layer_norm.…`).
    public var weightShapes: [String: [Int]] {
        let (width, inner) = (hiddenSize, intermediateSize)
        var shapes: [String: [Int]] = [
            "embeddings.token_embedding.weight": [vocabSize, width],
            "embeddings.position_embedding.weight": [maxPositionEmbeddings, width],
            "final_layer_norm.weight": [width], "final_layer_norm.bias": [width],
        ]
        for layer in 0..<numHiddenLayers {
            let prefix = "encoder.layers.\(layer)."
            for norm in ["layer_norm1", "layer_norm2"] {
                shapes[prefix + norm + ".weight"] = [width]
                shapes[prefix + norm + ".bias"] = [width]
            }
            for (name, outputs, inputs) in [("self_attn.q_proj", width, width), ("self_attn.k_proj", width, width),
                                            ("self_attn.v_proj", width, width), ("self_attn.out_proj", width, width),
                                            ("mlp.fc1", inner, width), ("mlp.fc2", width, inner)] {
                shapes[prefix + name + ".weight"] = [outputs, inputs]
                shapes[prefix + name + ".bias"] = [outputs]
            }
        }
        return shapes
    }
}

extension T5EncoderConfig {
    /// Every tensor of a T5 encoder with this config (`shared.weight`, `encoder.block.{i}.…`,
    /// `encoder.final_layer_norm.weight`).
    public var weightShapes: [String: [Int]] {
        var shapes: [String: [Int]] = [
            "shared.weight": [vocabSize, dModel],
            "encoder.final_layer_norm.weight": [dModel],
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": [relativeAttentionNumBuckets, numHeads],
        ]
        for block in 0..<numLayers {
            let prefix = "encoder.block.\(block).layer."
            shapes[prefix + "0.layer_norm.weight"] = [dModel]
            shapes[prefix + "1.layer_norm.weight"] = [dModel]
            for name in ["q", "k", "v"] { shapes[prefix + "0.SelfAttention.\(name).weight"] = [innerDim, dModel] }
            shapes[prefix + "0.SelfAttention.o.weight"] = [dModel, innerDim]
            shapes[prefix + "1.DenseReluDense.wi_0.weight"] = [dFf, dModel]
            shapes[prefix + "1.DenseReluDense.wi_1.weight"] = [dFf, dModel]
            shapes[prefix + "1.DenseReluDense.wo.weight"] = [dModel, dFf]
        }
        return shapes
    }

    /// T5-v1.1-XXL as FLUX.1 uses it (`text_encoder_2/config.json`).
    public static let t5XXL = T5EncoderConfig(
        vocabSize: 32128, dModel: 4096, dKv: 64, numHeads: 64, dFf: 10240, numLayers: 24)
}

extension CLIPTextConfig {
    /// CLIP ViT-L/14's text model as FLUX.1 uses it (`text_encoder/config.json`).
    public static let clipL = CLIPTextConfig(
        vocabSize: 49408, hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12,
        maxPositionEmbeddings: 77, eosTokenId: 2)
}
