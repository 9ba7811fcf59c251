import CUDABackend
import Models
import NunchakuCore
import SafeTensors

/// A FLUX.1 text-to-image pipeline of any size with seeded random weights and no files, for measuring the real
/// `FluxPipeline` path (`generate`: encode, denoise, decode) on a device: `RandomStageWeights` for CLIP, T5 and the
/// VAE (or `TinyChatSyntheticCheckpoint` for Nunchaku's 4-bit T5), `FluxRandomCheckpoint` for the transformer, and
/// character-level synthetic tokenizers (ids from a fixed prompt; the timings do not depend on which ids they are).
public struct FluxRandomPipeline: Sendable {
    /// How T5's weights are stored.
    public enum T5Weights: String, Sendable, Codable, CaseIterable {
        /// Dense bf16 (`text_encoder_2/` of the FLUX repos).
        case bf16
        /// Every block linear a 4-bit TinyChat layer, group 128 (Nunchaku's `awq-int4-flux.1-t5xxl.safetensors`).
        case awq
    }

    public var transformer: FluxConfig
    public var transformerFormat: FluxRandomCheckpoint.Format
    public var clip: CLIPTextConfig
    public var t5: T5EncoderConfig
    public var t5Weights: T5Weights
    public var vae: VAEConfig
    public var seed: UInt64

    public init(transformer: FluxConfig, transformerFormat: FluxRandomCheckpoint.Format = .int4, clip: CLIPTextConfig,
                t5: T5EncoderConfig, t5Weights: T5Weights = .bf16, vae: VAEConfig, seed: UInt64 = 0) {
        self.transformer = transformer
        self.transformerFormat = transformerFormat
        self.clip = clip
        self.t5 = t5
        self.t5Weights = t5Weights
        self.vae = vae
        self.seed = seed
    }

    /// FLUX.1 at full size: the `transformer` config (`FluxConfig.named("flux-dev")` or schnell), CLIP-L, T5-XXL and
    /// the FLUX VAE as the FLUX.1 repos configure them.
    public static func fullSize(transformer: FluxConfig, transformerFormat: FluxRandomCheckpoint.Format = .int4,
                                t5Weights: T5Weights = .bf16, seed: UInt64 = 0) -> FluxRandomPipeline {
        FluxRandomPipeline(transformer: transformer, transformerFormat: transformerFormat, clip: .clipL, t5: .t5XXL,
                           t5Weights: t5Weights, vae: .flux, seed: seed)
    }

    /// The prompt the synthetic tokenizers encode (lowercase letters and spaces only).
    public static let prompt = "a photograph of an astronaut riding a horse on the surface of the moon at dawn"

    /// Builds the four models on `device` (bf16) and the pipeline around them.
    /// - Parameter numerics: the GPU transformer's W4A4 numerics (the CPU has only `.exact`).
    /// - Parameter attention: the GPU transformer's attention operands (the CPU has only `.bf16`).
    /// - Parameter fp8Accumulation: with `.fast` numerics, where the FP8 GEMMs accumulate fast.
    /// - Parameter progress: one `.loading` report per model, as `FluxPipelineLoader`.
    /// - Throws: `FluxPipelineError.invalidSetting` for fast numerics on the CPU; `NunchakuError` when the configs do
    ///   not fit together or a model cannot be built.
    public func makePipeline(device: FluxPipelineDevice, numerics: W4A4Numerics = .exact, attention: AttentionPrecision = .bf16,
                             fp8Accumulation: FP8Accumulation = .standard, progress: FluxPipelineProgressHandler? = nil) throws -> FluxPipeline {
        let options = FluxPipelineLoadOptions(device: device, dtype: .bf16, numerics: numerics, attention: attention)
        try FluxPipelineLoader.checkDevice(options)
        try FluxPipelineLoader.checkCompatibility(transformer: transformer, transformerSource: "random \(transformerFormat) FLUX",
                                                  clipWidth: clip.hiddenSize, t5Width: t5.dModel, vae: vae, pipeline: "random pipeline")
        let reporter = FluxStageReporter(.loading, total: 4, handler: progress)
        try reporter.report(0, "transformer")
        let checkpoint = try FluxRandomCheckpoint(config: transformer, format: transformerFormat, seed: seed)
        let transformerModel: any FluxDenoising = switch device {
        case .cpu: try FluxTransformer(random: checkpoint, computeDType: .bf16)
        case .cuda(let context): try FluxCUDATransformer(random: checkpoint, context: context, numerics: numerics, attention: attention)
        }
        (transformerModel as? FluxCUDATransformer)?.fastEngine?.accumulation = fp8Accumulation
        try reporter.report(1, "text_encoder")
        let clipWeights = RandomStageWeights(shapes: clip.weightShapes, seed: seed &+ 1)
        let clipModel: any CLIPTextEncoding = switch device {
        case .cpu: try CLIPTextModel(config: clip, weights: clipWeights, source: "random CLIP", dtype: .bf16)
        case .cuda(let context): try CUDACLIPTextModel(config: clip, weights: clipWeights, source: "random CLIP", context: context)
        }
        try reporter.report(2, "text_encoder_2")
        let t5Model = try makeT5(device: device)
        try reporter.report(3, "vae")
        let vaeWeights = RandomStageWeights(shapes: vae.decoderWeightShapes, seed: seed &+ 3)
        let vaeModel: any FluxLatentDecoding = switch device {
        case .cpu: try AutoencoderKLDecoder(config: vae, weights: vaeWeights, computeDType: .bf16, source: "random VAE")
        case .cuda(let context): try CUDAAutoencoderKLDecoder(config: vae, weights: vaeWeights, context: context, source: "random VAE")
        }
        try reporter.report(4, "done")
        let models = FluxPipelineModels(clip: clipModel, t5: t5Model, transformer: transformerModel, vae: vaeModel)
        return try FluxPipeline(models: models, tokenizers: try Self.tokenizers(clipLength: clip.maxPositionEmbeddings),
                                scheduler: transformer.guidanceEmbeds ? .fluxDev : .fluxSchnell, dtype: .bf16)
    }

    private func makeT5(device: FluxPipelineDevice) throws -> any T5TextEncoding {
        let source = "random T5 (\(t5Weights.rawValue))"
        let weights: any TensorProvider & Sendable
        let dense: any TensorProvider
        switch t5Weights {
        case .bf16:
            weights = RandomStageWeights(shapes: t5.weightShapes, seed: seed &+ 2)
            dense = weights
        case .awq:
            weights = try TinyChatSyntheticCheckpoint.t5(config: t5, seed: seed &+ 2)
            dense = TinyChatDequantizedWeights(weights, groupSize: T5AWQCheckpoint.groupSize)
        }
        switch device {
        case .cpu:
            return try T5EncoderModel(config: t5, weights: dense, source: source, dtype: .bf16)
        case .cuda(let context):
            return try CUDAT5EncoderModel(config: t5, weights: weights, source: source, context: context)
        }
    }

    /// Character-level tokenizers (`a`…`z` → 0…25, `<pad>` 26, `<unk>` 27; words split at white space) for both
    /// encoders, padding as FluxPipeline does: CLIP to `clipLength`, T5 to the run's sequence length.
    static func tokenizers(clipLength: Int) throws -> FluxPromptTokenizers {
        let letters = "abcdefghijklmnopqrstuvwxyz".map(String.init)
        let vocabulary = (letters + ["<pad>", "<unk>"]).enumerated().map { "\"\($0.element)\": \($0.offset)" }
        let json = """
            {"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
             "post_processor": null, "decoder": null,
             "model": {"type": "BPE", "vocab": {\(vocabulary.joined(separator: ", "))}, "merges": [], "unk_token": "<unk>"}}
            """
        let tokenizer = try Tokenizer(json: try JSONValue.parse(Array(json.utf8)), source: "synthetic tokenizer")
        return try FluxPromptTokenizers(
            clip: tokenizer, clipConfiguration: TokenizerConfiguration(padToken: "<pad>", modelMaxLength: clipLength),
            clipSource: "synthetic CLIP tokenizer",
            t5: tokenizer, t5Configuration: TokenizerConfiguration(padToken: "<pad>"), t5Source: "synthetic T5 tokenizer")
    }
}
