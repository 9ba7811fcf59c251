import Models
import NunchakuCore

/// FLUX.1 text-to-image, as diffusers' `FluxPipeline.__call__` computes it: CLIP pooled + T5 prompt embeddings,
/// seeded noise packed into 2×2 latent tokens, the flow-matching Euler loop over the transformer (with the distilled
/// guidance scale for dev), then the VAE decode and 8-bit conversion.
///
/// ```swift
/// let pipeline = try FluxPipelineLoader.load("black-forest-labs/FLUX.1-schnell",
///                                            options: FluxPipelineLoadOptions(transformerPath: "svdq-int4_r32-flux.1-schnell.safetensors"))
/// let output = try pipeline.generate(.init(prompt: "a cat holding a sign", seed: 42)) { progress in
///     print(progress.stage, progress.completed, progress.total); return .proceed
/// }
/// try PNGWriter.write(output.images[0], to: "cat.png", text: output.pngText(imageIndex: 0))
/// ```
///
/// The stages can also be run one at a time (`encode`, `denoise`, `decode`), e.g. to record the transformer's
/// inputs without decoding images.
public struct FluxPipeline: Sendable {
    public let models: FluxPipelineModels
    public let tokenizers: FluxPromptTokenizers
    public let scheduler: FlowMatchSchedulerConfiguration
    /// The dtype of the embeddings, noise and latents (the models' compute dtype): f32 or bf16.
    public let dtype: DType

    /// A pipeline of already-built models.
    /// - Throws: `FluxPipelineError.invalidSetting` for a dtype other than f32 and bf16.
    public init(models: FluxPipelineModels, tokenizers: FluxPromptTokenizers, scheduler: FlowMatchSchedulerConfiguration,
                dtype: DType) throws {
        guard dtype == .f32 || dtype == .bf16 else {
            throw FluxPipelineError.invalidSetting(setting: "dtype", reason: "\(dtype); the pipeline computes in f32 or bf16")
        }
        self.models = models
        self.tokenizers = tokenizers
        self.scheduler = scheduler
        self.dtype = dtype
    }

    /// The transformer's config (it decides the defaults: guidance-distilled dev or schnell).
    public var transformerConfig: FluxConfig { models.transformer.config }

    /// Generates the images `configuration` describes.
    /// - Parameter progress: reports per stage and per denoising step; replying `.cancel` stops the run with
    ///   `FluxPipelineError.cancelled` (nothing is written anywhere by the pipeline).
    /// - Throws: `FluxPipelineError.invalidSetting` for settings the model cannot use, `.cancelled`, and the stages'
    ///   own errors.
    public func generate(_ configuration: Configuration, progress: FluxPipelineProgressHandler? = nil) throws -> FluxPipelineOutput {
        let settings = try configuration.resolved(for: transformerConfig)
        let clock = ContinuousClock()
        var start = clock.now
        var seconds: [FluxPipelineProgress.Stage: Double] = [:]
        func lap(_ stage: FluxPipelineProgress.Stage) {
            seconds[stage] = (clock.now - start).inSeconds
            start = clock.now
        }
        let embeddings = try encode(settings, progress: progress)
        lap(.encoding)
        let latents = try denoise(embeddings, settings, progress: progress)
        lap(.denoising)
        let (image, images) = try decode(latents.final, width: settings.width, height: settings.height,
                                         completedSteps: settings.steps, progress: progress)
        lap(.decoding)
        return FluxPipelineOutput(settings: settings, images: images, embeddings: embeddings, latents: latents,
                                  decoded: image, stageSeconds: seconds)
    }
}
