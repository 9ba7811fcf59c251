import Foundation
import NunchakuCore

/// The hyper-parameters of a FLUX.1 transformer, as diffusers writes them in `transformer/config.json`
/// (`FluxTransformer2DModel`). Keys missing from the file take diffusers' defaults; unknown keys are ignored.
public struct FluxConfig: Codable, Sendable, Equatable {
    public var patchSize: Int = 1
    /// Channels of the packed latent tokens: 64 for text-to-image, 384 for Fill, 128 for Depth/Canny.
    public var inChannels: Int = 64
    /// Output channels; nil means `inChannels`.
    public var outChannels: Int?
    /// Double-stream blocks.
    public var numLayers: Int = 19
    /// Single-stream blocks.
    public var numSingleLayers: Int = 38
    public var attentionHeadDim: Int = 128
    public var numAttentionHeads: Int = 24
    /// Width of the text-encoder (T5) states.
    public var jointAttentionDim: Int = 4096
    /// Width of the pooled (CLIP) text embedding.
    public var pooledProjectionDim: Int = 768
    /// Whether the model embeds a guidance scale (FLUX.1-dev: yes, schnell: no).
    public var guidanceEmbeds: Bool = false
    /// Head dimensions per RoPE position axis; they must sum to `attentionHeadDim`.
    public var axesDimsRope: [Int] = [16, 56, 56]

    enum CodingKeys: String, CodingKey {
        case patchSize = "patch_size", inChannels = "in_channels", outChannels = "out_channels"
        case numLayers = "num_layers", numSingleLayers = "num_single_layers"
        case attentionHeadDim = "attention_head_dim", numAttentionHeads = "num_attention_heads"
        case jointAttentionDim = "joint_attention_dim", pooledProjectionDim = "pooled_projection_dim"
        case guidanceEmbeds = "guidance_embeds", axesDimsRope = "axes_dims_rope"
    }

    /// A configuration; every argument defaults to FLUX.1's real value (schnell: no guidance).
    public init(
        patchSize: Int = 1, inChannels: Int = 64, outChannels: Int? = nil, numLayers: Int = 19, numSingleLayers: Int = 38,
        attentionHeadDim: Int = 128, numAttentionHeads: Int = 24, jointAttentionDim: Int = 4096,
        pooledProjectionDim: Int = 768, guidanceEmbeds: Bool = false, axesDimsRope: [Int] = [16, 56, 56]
    ) {
        self.patchSize = patchSize
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.numLayers = numLayers
        self.numSingleLayers = numSingleLayers
        self.attentionHeadDim = attentionHeadDim
        self.numAttentionHeads = numAttentionHeads
        self.jointAttentionDim = jointAttentionDim
        self.pooledProjectionDim = pooledProjectionDim
        self.guidanceEmbeds = guidanceEmbeds
        self.axesDimsRope = axesDimsRope
    }

    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = FluxConfig()
        patchSize = try values.decodeIfPresent(Int.self, forKey: .patchSize) ?? defaults.patchSize
        inChannels = try values.decodeIfPresent(Int.self, forKey: .inChannels) ?? defaults.inChannels
        outChannels = try values.decodeIfPresent(Int.self, forKey: .outChannels)
        numLayers = try values.decodeIfPresent(Int.self, forKey: .numLayers) ?? defaults.numLayers
        numSingleLayers = try values.decodeIfPresent(Int.self, forKey: .numSingleLayers) ?? defaults.numSingleLayers
        attentionHeadDim = try values.decodeIfPresent(Int.self, forKey: .attentionHeadDim) ?? defaults.attentionHeadDim
        numAttentionHeads = try values.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? defaults.numAttentionHeads
        jointAttentionDim = try values.decodeIfPresent(Int.self, forKey: .jointAttentionDim) ?? defaults.jointAttentionDim
        pooledProjectionDim = try values.decodeIfPresent(Int.self, forKey: .pooledProjectionDim) ?? defaults.pooledProjectionDim
        guidanceEmbeds = try values.decodeIfPresent(Bool.self, forKey: .guidanceEmbeds) ?? defaults.guidanceEmbeds
        axesDimsRope = try values.decodeIfPresent([Int].self, forKey: .axesDimsRope) ?? defaults.axesDimsRope
    }

    /// Decodes and validates a diffusers `config.json`; `source` names the file in errors.
    public static func decode(_ json: Data, source: String) throws -> FluxConfig {
        let config: FluxConfig
        do {
            config = try JSONDecoder().decode(FluxConfig.self, from: json)
        } catch {
            throw NunchakuError.invalidArgument(context: source, reason: "not a FLUX transformer config: \(error)")
        }
        try config.validate(source: source)
        return config
    }

    /// The model width D = heads × head dim (3072 for FLUX.1).
    public var innerDim: Int { numAttentionHeads * attentionHeadDim }
    /// The width of the MLP hidden layer (4·D).
    public var mlpHiddenDim: Int { 4 * innerDim }
    /// Features per output token: patch² × out channels.
    public var outputFeatures: Int { patchSize * patchSize * (outChannels ?? inChannels) }

    /// Throws when the numbers cannot describe a FLUX transformer.
    public func validate(source: String = "FluxConfig") throws {
        let positive = [
            ("patch_size", patchSize), ("in_channels", inChannels), ("out_channels", outChannels ?? inChannels),
            ("attention_head_dim", attentionHeadDim), ("num_attention_heads", numAttentionHeads),
            ("joint_attention_dim", jointAttentionDim), ("pooled_projection_dim", pooledProjectionDim),
        ]
        for (key, value) in positive where value <= 0 {
            throw NunchakuError.invalidArgument(context: source, reason: "\(key) must be positive, got \(value)")
        }
        guard numLayers >= 0, numSingleLayers >= 0 else {
            throw NunchakuError.invalidArgument(context: source, reason: "block counts must not be negative")
        }
        guard !axesDimsRope.isEmpty, axesDimsRope.allSatisfy({ $0 > 0 && $0 % 2 == 0 }),
              axesDimsRope.reduce(0, +) == attentionHeadDim else {
            throw NunchakuError.invalidArgument(
                context: source,
                reason: "axes_dims_rope \(axesDimsRope) must be even, positive and sum to attention_head_dim \(attentionHeadDim)")
        }
    }
}
