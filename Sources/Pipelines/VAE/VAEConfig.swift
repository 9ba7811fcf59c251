import Foundation
import NunchakuCore

/// The hyper-parameters of a diffusers `AutoencoderKL`, as its `vae/config.json` writes them. Only what the decoder
/// needs is read; keys missing from the file take diffusers' defaults (so an SD-style config without
/// `use_post_quant_conv` gets the post-quant conv, as diffusers does), unknown keys are ignored.
public struct VAEConfig: Codable, Sendable, Equatable {
    /// Channels of the decoded image (3 for RGB).
    public var outChannels: Int = 3
    /// Channels of the latent space (16 for FLUX.1, 4 for Stable Diffusion).
    public var latentChannels: Int = 4
    /// Encoder channel widths, shallow to deep; the decoder walks them in reverse.
    public var blockOutChannels: [Int] = [64]
    /// Resnets per encoder block; decoder up blocks have one more.
    public var layersPerBlock: Int = 1
    /// GroupNorm groups (every channel width must divide by it).
    public var normNumGroups: Int = 32
    /// The decoder's up block kinds; only `UpDecoderBlock2D` exists in AutoencoderKL.
    public var upBlockTypes: [String] = ["UpDecoderBlock2D"]
    /// The activation; AutoencoderKL decoders use `silu`.
    public var actFn: String = "silu"
    /// Whether the mid block has its self-attention layer.
    public var midBlockAddAttention: Bool = true
    /// Whether a 1×1 `post_quant_conv` runs before the decoder (Stable Diffusion: yes, FLUX.1: no).
    public var usePostQuantConv: Bool = true
    /// Latents are `(z − shift) · scaling` in the diffusion model's space; decoding undoes that.
    public var scalingFactor: Double = 0.18215
    /// nil when the VAE has no shift (Stable Diffusion); 0.1159 for FLUX.1.
    public var shiftFactor: Double?

    enum CodingKeys: String, CodingKey {
        case outChannels = "out_channels", latentChannels = "latent_channels", blockOutChannels = "block_out_channels"
        case layersPerBlock = "layers_per_block", normNumGroups = "norm_num_groups", upBlockTypes = "up_block_types"
        case actFn = "act_fn", midBlockAddAttention = "mid_block_add_attention", usePostQuantConv = "use_post_quant_conv"
        case scalingFactor = "scaling_factor", shiftFactor = "shift_factor"
    }

    /// The FLUX.1 VAE (`black-forest-labs/FLUX.1-*/vae/config.json`).
    public static let flux = VAEConfig(
        latentChannels: 16, blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2, normNumGroups: 32,
        upBlockTypes: Array(repeating: "UpDecoderBlock2D", count: 4), usePostQuantConv: false,
        scalingFactor: 0.3611, shiftFactor: 0.1159)

    /// A configuration; every argument defaults to diffusers' `AutoencoderKL` default.
    public init(
        outChannels: Int = 3, latentChannels: Int = 4, blockOutChannels: [Int] = [64], layersPerBlock: Int = 1,
        normNumGroups: Int = 32, upBlockTypes: [String] = ["UpDecoderBlock2D"], actFn: String = "silu",
        midBlockAddAttention: Bool = true, usePostQuantConv: Bool = true, scalingFactor: Double = 0.18215,
        shiftFactor: Double? = nil
    ) {
        self.outChannels = outChannels
        self.latentChannels = latentChannels
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock
        self.normNumGroups = normNumGroups
        self.upBlockTypes = upBlockTypes
        self.actFn = actFn
        self.midBlockAddAttention = midBlockAddAttention
        self.usePostQuantConv = usePostQuantConv
        self.scalingFactor = scalingFactor
        self.shiftFactor = shiftFactor
    }

    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = VAEConfig()
        outChannels = try values.decodeIfPresent(Int.self, forKey: .outChannels) ?? defaults.outChannels
        latentChannels = try values.decodeIfPresent(Int.self, forKey: .latentChannels) ?? defaults.latentChannels
        blockOutChannels = try values.decodeIfPresent([Int].self, forKey: .blockOutChannels) ?? defaults.blockOutChannels
        layersPerBlock = try values.decodeIfPresent(Int.self, forKey: .layersPerBlock) ?? defaults.layersPerBlock
        normNumGroups = try values.decodeIfPresent(Int.self, forKey: .normNumGroups) ?? defaults.normNumGroups
        upBlockTypes = try values.decodeIfPresent([String].self, forKey: .upBlockTypes) ?? defaults.upBlockTypes
        actFn = try values.decodeIfPresent(String.self, forKey: .actFn) ?? defaults.actFn
        midBlockAddAttention = try values.decodeIfPresent(Bool.self, forKey: .midBlockAddAttention) ?? defaults.midBlockAddAttention
        usePostQuantConv = try values.decodeIfPresent(Bool.self, forKey: .usePostQuantConv) ?? defaults.usePostQuantConv
        scalingFactor = try values.decodeIfPresent(Double.self, forKey: .scalingFactor) ?? defaults.scalingFactor
        shiftFactor = try values.decodeIfPresent(Double.self, forKey: .shiftFactor)
    }

    /// Decodes and validates a diffusers `config.json`; `source` names the file in errors.
    public static func decode(_ json: Data, source: String) throws -> VAEConfig {
        let config: VAEConfig
        do {
            config = try JSONDecoder().decode(VAEConfig.self, from: json)
        } catch {
            throw NunchakuError.invalidArgument(context: source, reason: "not an AutoencoderKL config: \(error)")
        }
        try config.validate(source: source)
        return config
    }

    /// How many times the decoder doubles the latent's height and width (8× for four blocks).
    public var upsamplingFactor: Int { 1 << (blockOutChannels.count - 1) }

    /// Throws when the numbers cannot describe an AutoencoderKL decoder this engine runs.
    public func validate(source: String = "VAEConfig") throws {
        func fail(_ reason: String) -> NunchakuError { .invalidArgument(context: source, reason: reason) }
        guard outChannels > 0, latentChannels > 0 else {
            throw fail("out_channels \(outChannels) and latent_channels \(latentChannels) must be positive")
        }
        guard !blockOutChannels.isEmpty, blockOutChannels.count <= 8, blockOutChannels.allSatisfy({ $0 > 0 }) else {
            throw fail("block_out_channels \(blockOutChannels) must be 1 to 8 positive widths")
        }
        guard layersPerBlock > 0 else { throw fail("layers_per_block must be positive, got \(layersPerBlock)") }
        guard normNumGroups > 0, blockOutChannels.allSatisfy({ $0 % normNumGroups == 0 }) else {
            throw fail("every block_out_channels width \(blockOutChannels) must be a multiple of norm_num_groups \(normNumGroups)")
        }
        guard upBlockTypes.count == blockOutChannels.count, upBlockTypes.allSatisfy({ $0 == "UpDecoderBlock2D" }) else {
            throw fail("up_block_types \(upBlockTypes) must be one UpDecoderBlock2D per block_out_channels entry")
        }
        guard actFn == "silu" || actFn == "swish" else { throw fail("act_fn \(actFn) is not supported (only silu)") }
        guard scalingFactor.isFinite, scalingFactor != 0, shiftFactor?.isFinite ?? true else {
            throw fail("scaling_factor \(scalingFactor) must be finite and non-zero, shift_factor finite")
        }
    }
}
