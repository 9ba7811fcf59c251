import NunchakuCore

/// The result of `FluxPipeline.generate`: the images and every stage's tensors (for parity checks and reuse).
public struct FluxPipelineOutput: Sendable {
    /// The settings used, defaults filled in.
    public let settings: FluxPipeline.Resolved
    /// One 8-bit RGB image per batch entry: prompt 0's images first, then prompt 1's, …
    public let images: [RGBImage]
    /// `prompt_embeds` and `pooled_prompt_embeds`, one row per image.
    public let embeddings: FluxPromptEmbeddings
    /// The packed noise and the latents after the last step.
    public let latents: FluxDenoisedLatents
    /// The VAE output `[batch, 3, height, width]`, nominally in [-1, 1].
    public let decoded: Tensor
    /// Wall-clock seconds of `.encoding`, `.denoising` and `.decoding`.
    public let stageSeconds: [FluxPipelineProgress.Stage: Double]

    /// The prompt of image `imageIndex`.
    public func prompt(imageIndex: Int) -> String {
        settings.prompts[imageIndex / settings.imagesPerPrompt]
    }

    /// PNG text entries describing image `imageIndex`: prompt, seed (with the image's position in the seeded
    /// batch), steps, guidance, size, T5 length and `extra` entries (e.g. the model), for `PNGWriter`.
    public func pngText(imageIndex: Int, extra: [PNGWriter.TextEntry] = []) -> [PNGWriter.TextEntry] {
        var entries = [
            PNGWriter.TextEntry(keyword: "prompt", text: prompt(imageIndex: imageIndex)),
            PNGWriter.TextEntry(keyword: "seed", text: String(settings.seed)),
            PNGWriter.TextEntry(keyword: "steps", text: String(settings.steps)),
            PNGWriter.TextEntry(keyword: "guidance", text: settings.guidance.map { String($0) } ?? "none"),
            PNGWriter.TextEntry(keyword: "size", text: "\(settings.width)x\(settings.height)"),
            PNGWriter.TextEntry(keyword: "max sequence length", text: String(settings.maxSequenceLength)),
        ]
        if settings.batch > 1 {
            entries.append(PNGWriter.TextEntry(keyword: "batch index", text: "\(imageIndex + 1) of \(settings.batch)"))
        }
        entries.append(PNGWriter.TextEntry(keyword: "Software", text: "swift-nunchaku"))
        return entries + extra
    }
}
