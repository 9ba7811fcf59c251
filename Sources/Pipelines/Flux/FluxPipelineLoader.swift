import Foundation
import Models
import NunchakuCore

/// Opens a FLUX pipeline from disk and builds its models for a device. `makeModels` is the one place that decides
/// which implementation runs each stage.
public enum FluxPipelineLoader {
    /// The pipeline folder `reference` names: a folder on disk, or a Hub repo id (`org/name`) found in the local
    /// Hugging Face cache.
    /// - Parameter transformerReplaced: true when another transformer will be used, so `transformer/` may be absent.
    /// - Parameter textEncoder2Replaced: true when a 4-bit T5 file will be used, so `text_encoder_2/` may be absent.
    /// - Throws: `FluxPipelineError.missingParts` (every missing part and where it was looked for),
    ///   `.notInCache` (every cache folder searched), `NunchakuError.io` for a path that is neither.
    public static func folder(for reference: String, transformerReplaced: Bool = false, textEncoder2Replaced: Bool = false,
                              cache: HuggingFaceCache = HuggingFaceCache()) throws -> FluxPipelineFolder {
        let root = !FileManager.default.fileExists(atPath: reference) && HuggingFaceCache.isRepoID(reference)
            ? try cache.snapshot(of: reference) : reference
        return try FluxPipelineFolder(root: root, includingTransformer: !transformerReplaced,
                                      includingTextEncoder2: !textEncoder2Replaced)
    }

    /// Loads the pipeline `reference` names (see `folder(for:transformerReplaced:cache:)`).
    /// - Parameter progress: one `.loading` report per model; a `.cancel` reply stops loading with
    ///   `FluxPipelineError.cancelled`.
    public static func load(_ reference: String, options: FluxPipelineLoadOptions = FluxPipelineLoadOptions(),
                            cache: HuggingFaceCache = HuggingFaceCache(),
                            progress: FluxPipelineProgressHandler? = nil) throws -> FluxPipeline {
        let folder = try folder(for: reference, transformerReplaced: options.transformerPath != nil,
                                textEncoder2Replaced: options.textEncoder2AWQPath != nil, cache: cache)
        return try load(folder: folder, options: options, progress: progress)
    }

    /// Loads the pipeline in `folder`: tokenizers, scheduler config and the four models.
    /// - Parameter transformer: a transformer already built (e.g. one recording its layers' inputs for calibration);
    ///   the folder's (or `options.transformerPath`'s) is then not loaded.
    public static func load(folder: FluxPipelineFolder, options: FluxPipelineLoadOptions = FluxPipelineLoadOptions(),
                            transformer: (any FluxDenoising)? = nil,
                            progress: FluxPipelineProgressHandler? = nil) throws -> FluxPipeline {
        guard options.dtype == .f32 || options.dtype == .bf16 else {
            throw FluxPipelineError.invalidSetting(setting: "dtype", reason: "\(options.dtype); the pipeline computes in f32 or bf16")
        }
        if case .cuda = options.device, options.dtype != .bf16 {
            throw FluxPipelineError.invalidSetting(setting: "dtype", reason: "the CUDA transformer computes in bf16; use bf16 with the cuda device")
        }
        let reporter = FluxStageReporter(.loading, total: 4, handler: progress)
        let tokenizers = try FluxPromptTokenizers(folder: folder)
        let scheduler = try FlowMatchSchedulerConfiguration(contentsOfFile: folder.schedulerConfigPath)
        let models = try makeModels(folder: folder, options: options, transformer: transformer, reporter: reporter)
        return try FluxPipeline(models: models, tokenizers: tokenizers, scheduler: scheduler, dtype: options.dtype)
    }

    /// Builds each stage's model for `options.device` (see `makeTransformer`, `makeCLIP`, `makeT5`, `makeVAE`).
    static func makeModels(folder: FluxPipelineFolder, options: FluxPipelineLoadOptions, transformer given: (any FluxDenoising)?,
                           reporter: FluxStageReporter) throws -> FluxPipelineModels {
        try checkDevice(options)
        try reporter.report(0, "transformer")
        let (transformer, transformerSource) = try given.map { ($0, "the given transformer") }
            ?? makeTransformer(path: options.transformerPath ?? folder.path("transformer"), options: options)
        try reporter.report(1, "text_encoder")
        let (clip, clipWidth) = try makeCLIP(folder: folder.path("text_encoder"), options: options)
        try reporter.report(2, "text_encoder_2")
        let (t5, t5Width) = try makeT5(folder: folder.path("text_encoder_2"), options: options)
        try reporter.report(3, "vae")
        let (vae, vaeConfig, vaeNote) = try makeVAE(path: folder.path("vae"), options: options)
        try reporter.report(4, "done")
        try checkCompatibility(transformer: transformer.config, transformerSource: transformerSource,
                               clipWidth: clipWidth, t5Width: t5Width, vae: vaeConfig, pipeline: folder.root)
        return FluxPipelineModels(clip: clip, t5: t5, transformer: transformer, vae: vae, notes: vaeNote.map { [$0] } ?? [])
    }

    /// Checks that the models fit together as a FLUX text-to-image pipeline.
    /// - Parameter pipeline: what the models come from, for messages (the folder).
    /// - Throws: `NunchakuError.invalidArgument` naming the two configs that disagree.
    static func checkCompatibility(transformer: FluxConfig, transformerSource: String, clipWidth: Int, t5Width: Int,
                                   vae: VAEConfig, pipeline: String) throws {
        let packed = FluxLatentGeometry.channels * 4
        guard transformer.inChannels == packed, transformer.outputFeatures == packed, transformer.patchSize == 1 else {
            throw NunchakuError.unsupported(
                context: transformerSource,
                reason: "in_channels \(transformer.inChannels), output features \(transformer.outputFeatures), patch size \(transformer.patchSize): text-to-image FLUX has 64, 64 and 1 (Fill, Depth and Canny models need image conditioning, which this pipeline does not implement)")
        }
        let mismatches = [
            (clipWidth, transformer.pooledProjectionDim, "text_encoder hidden_size", "pooled_projection_dim"),
            (t5Width, transformer.jointAttentionDim, "text_encoder_2 d_model", "joint_attention_dim"),
            (vae.latentChannels, FluxLatentGeometry.channels, "vae latent_channels", "the 16 latent channels of the packed tokens"),
            (vae.upsamplingFactor, 8, "vae upsampling factor (2^(len(block_out_channels) − 1))", "FLUX's 8"),
        ].filter { $0.0 != $0.1 }
        guard mismatches.isEmpty else {
            let list = mismatches.map { "\($0.2) = \($0.0) but the transformer needs \($0.3) = \($0.1)" }
            throw NunchakuError.invalidArgument(
                context: "\(pipeline) with transformer \(transformerSource)", reason: "the models do not fit together: \(list.joined(separator: "; "))")
        }
    }
}
