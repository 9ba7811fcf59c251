import Foundation
import NunchakuCore

/// The keys of a transformers `T5Config` (`config.json` of FLUX's `text_encoder_2/`) that the T5 encoder uses.
public struct T5EncoderConfig: Sendable, Equatable, Decodable {
    public var vocabSize: Int
    public var dModel: Int
    public var dKv: Int
    public var numHeads: Int
    public var dFf: Int
    public var numLayers: Int
    public var relativeAttentionNumBuckets: Int
    /// Absent in old configs; transformers then uses 128.
    public var relativeAttentionMaxDistance: Int
    public var layerNormEpsilon: Float
    /// Only `gated-gelu` (T5 v1.1, FLUX's T5-XXL: gated feed-forward with `gelu_new`) is supported.
    public var feedForwardProj: String

    private enum CodingKeys: String, CodingKey {
        case vocabSize, dModel, dKv, numHeads, dFf, numLayers, relativeAttentionNumBuckets,
             relativeAttentionMaxDistance, layerNormEpsilon, feedForwardProj
    }

    public init(vocabSize: Int, dModel: Int, dKv: Int, numHeads: Int, dFf: Int, numLayers: Int,
                relativeAttentionNumBuckets: Int = 32, relativeAttentionMaxDistance: Int = 128,
                layerNormEpsilon: Float = 1e-6, feedForwardProj: String = "gated-gelu") {
        self.vocabSize = vocabSize
        self.dModel = dModel
        self.dKv = dKv
        self.numHeads = numHeads
        self.dFf = dFf
        self.numLayers = numLayers
        self.relativeAttentionNumBuckets = relativeAttentionNumBuckets
        self.relativeAttentionMaxDistance = relativeAttentionMaxDistance
        self.layerNormEpsilon = layerNormEpsilon
        self.feedForwardProj = feedForwardProj
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            vocabSize: try container.decode(Int.self, forKey: .vocabSize),
            dModel: try container.decode(Int.self, forKey: .dModel),
            dKv: try container.decode(Int.self, forKey: .dKv),
            numHeads: try container.decode(Int.self, forKey: .numHeads),
            dFf: try container.decode(Int.self, forKey: .dFf),
            numLayers: try container.decode(Int.self, forKey: .numLayers),
            relativeAttentionNumBuckets: try container.decode(Int.self, forKey: .relativeAttentionNumBuckets),
            relativeAttentionMaxDistance: try container.decodeIfPresent(Int.self, forKey: .relativeAttentionMaxDistance) ?? 128,
            layerNormEpsilon: try container.decode(Float.self, forKey: .layerNormEpsilon),
            feedForwardProj: try container.decode(String.self, forKey: .feedForwardProj))
    }

    /// The config in `data` (a `config.json`), checked; `source` names it in errors.
    public static func decode(_ data: Data, source: String) throws -> T5EncoderConfig {
        let config = try decodeTextEncoderConfig(T5EncoderConfig.self, from: data, source: source)
        try config.validate(source: source)
        return config
    }

    /// Throws unless the sizes are positive and the feed-forward kind is supported.
    public func validate(source: String) throws {
        try requirePositive([
            "vocab_size": vocabSize, "d_model": dModel, "d_kv": dKv, "num_heads": numHeads, "d_ff": dFf,
            "num_layers": numLayers, "relative_attention_num_buckets": relativeAttentionNumBuckets,
            "relative_attention_max_distance": relativeAttentionMaxDistance,
        ], source: source)
        guard relativeAttentionNumBuckets >= 4, relativeAttentionNumBuckets % 2 == 0 else {
            throw NunchakuError.invalidArgument(
                context: source, reason: "relative_attention_num_buckets must be even and at least 4, got \(relativeAttentionNumBuckets)")
        }
        guard feedForwardProj == "gated-gelu" else {
            throw NunchakuError.unsupported(
                context: source, reason: "feed_forward_proj `\(feedForwardProj)`: only gated-gelu (T5 v1.1) is implemented")
        }
    }

    /// The width of the attention projections, `num_heads · d_kv`.
    public var innerDim: Int { numHeads * dKv }
}
