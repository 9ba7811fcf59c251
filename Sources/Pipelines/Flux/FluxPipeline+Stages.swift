import Models
import NunchakuCore

/// The text conditioning of a batch, one row per image (each prompt's rows repeated `imagesPerPrompt` times).
public struct FluxPromptEmbeddings: Sendable {
    /// T5's last hidden state, `prompt_embeds` `[batch, maxSequenceLength, d_model]`.
    public let prompt: Tensor
    /// CLIP's pooled output, `pooled_prompt_embeds` `[batch, hidden]`.
    public let pooled: Tensor
}

/// The latents of a denoising run, packed `[batch, image tokens, 64]` in the pipeline's dtype.
public struct FluxDenoisedLatents: Sendable {
    /// The seeded noise the loop started from.
    public let initial: Tensor
    /// The latents after the last step.
    public let final: Tensor
}

extension FluxPipeline {
    /// Tokenizes the prompts and runs CLIP and T5 (no attention mask, as FluxPipeline), then repeats each prompt's
    /// rows `imagesPerPrompt` times. Reports two `.encoding` units.
    public func encode(_ settings: Resolved, progress: FluxPipelineProgressHandler? = nil) throws -> FluxPromptEmbeddings {
        let reporter = FluxStageReporter(.encoding, total: 2, handler: progress)
        try reporter.report(0, "text_encoder")
        let pooled = try models.clip.encode(tokenIDs: try tokenizers.clipIDs(settings.prompts)).pooled
        try reporter.report(1, "text_encoder_2")
        let prompt = try models.t5.encode(tokenIDs: try tokenizers.t5IDs(settings.prompts, length: settings.maxSequenceLength))
        try reporter.report(2, "done")
        return FluxPromptEmbeddings(prompt: try Self.repeatingSamples(prompt.converted(to: dtype), settings.imagesPerPrompt),
                                    pooled: try Self.repeatingSamples(pooled.converted(to: dtype), settings.imagesPerPrompt))
    }

    /// The denoising loop: noise from `TorchCPUGenerator(seed:)` in the pipeline's dtype, packed; the scheduler's
    /// shifted sigmas for the image token count; per step the transformer at `timestep = t / 1000` (computed in the
    /// latents' dtype, as diffusers does), then the Euler step. Reports one `.denoising` unit per step.
    /// - Parameter observer: called with each step's index and the transformer's inputs (diffusers names) before
    ///   the forward.
    public func denoise(_ embeddings: FluxPromptEmbeddings, _ settings: Resolved, progress: FluxPipelineProgressHandler? = nil,
                        observer: ((Int, [String: Tensor]) throws -> Void)? = nil) throws -> FluxDenoisedLatents {
        let geometry = try FluxLatentGeometry(height: settings.height, width: settings.width)
        let batch = settings.batch
        guard embeddings.prompt.rank == 3, embeddings.prompt.shape[0] == batch, embeddings.pooled.shape.first == batch else {
            throw NunchakuError.shapeMismatch(context: "prompt embeddings for a batch of \(batch)",
                                              expected: [batch, settings.maxSequenceLength, transformerConfig.jointAttentionDim],
                                              actual: embeddings.prompt.shape)
        }
        var generator = TorchCPUGenerator(seed: settings.seed)
        let noise = try generator.randn(shape: geometry.noiseShape(batch: batch), dtype: dtype, kernel: settings.noiseKernel,
                                        reducedPrecision: settings.reducedPrecisionNoise)
        let initial = try FluxLatentPacking.pack(noise)
        let schedule = try FlowMatchEulerScheduler(configuration: scheduler, stepCount: settings.steps,
                                                   imageSequenceLength: geometry.tokenCount)
        var arguments: [String: Tensor] = [
            "encoder_hidden_states": embeddings.prompt,
            "pooled_projections": embeddings.pooled,
            "img_ids": FluxLatentPacking.imagePositionIDs(geometry: geometry),
            "txt_ids": FluxLatentPacking.textPositionIDs(count: embeddings.prompt.shape[1]),
        ]
        if let guidance = settings.guidance {
            arguments["guidance"] = Tensor([Float](repeating: guidance, count: batch), shape: [batch], dtype: .f32)
        }
        let reporter = FluxStageReporter(.denoising, total: schedule.stepCount, handler: progress)
        try reporter.report(0, "step 1/\(schedule.stepCount)")
        var loop = models.transformer.denoisingLoop(fixedInputs: arguments)
        var values = initial.floats()
        for index in 0..<schedule.stepCount {
            let timestep = roundToDType(roundToDType(schedule.timesteps[index]) / 1000)
            arguments["timestep"] = Tensor([Float](repeating: timestep, count: batch), shape: [batch], dtype: dtype)
            arguments["hidden_states"] = Tensor(values, shape: initial.shape, dtype: dtype)
            try observer?(index, arguments)
            let velocity = try loop.velocity(hiddenStates: arguments["hidden_states"]!, timestep: arguments["timestep"]!)
            guard velocity.shape == initial.shape else {
                throw NunchakuError.shapeMismatch(context: "transformer output at step \(index + 1)", expected: initial.shape, actual: velocity.shape)
            }
            try schedule.step(&values, velocity: velocity.floats(), index: index, precision: dtype)
            try reporter.report(index + 1, index + 1 < schedule.stepCount ? "step \(index + 2)/\(schedule.stepCount)" : "done")
        }
        return FluxDenoisedLatents(initial: initial, final: Tensor(values, shape: initial.shape, dtype: dtype))
    }

    /// Unpacks packed latents, decodes them with the VAE (`z / scaling_factor + shift_factor` first) and converts
    /// the result to 8-bit images as diffusers' `VaeImageProcessor`. Reports one `.decoding` unit.
    /// - Returns: the decoder output `[batch, 3, height, width]` and the images.
    public func decode(_ latents: Tensor, width: Int, height: Int, completedSteps: Int = 0,
                       progress: FluxPipelineProgressHandler? = nil) throws -> (decoded: Tensor, images: [RGBImage]) {
        let reporter = FluxStageReporter(.decoding, total: 1, completedSteps: completedSteps, handler: progress)
        try reporter.report(0, "vae")
        let geometry = try FluxLatentGeometry(height: height, width: width)
        let decoded = try models.vae.decode(diffusionLatents: FluxLatentPacking.unpack(latents, geometry: geometry))
        let images = try RGBImage.images(fromDecoded: decoded)
        try reporter.report(1, "done")
        return (decoded, images)
    }

    /// `value` rounded to the pipeline's dtype.
    func roundToDType(_ value: Float) -> Float {
        dtype == .bf16 ? FloatFormats.float(bf16: FloatFormats.bf16Bits(value)) : value
    }

    /// Each sample (index 0) of `tensor` repeated `times` times in a row: `tensor.repeat(1, n, …).view(B·n, …)`.
    static func repeatingSamples(_ tensor: Tensor, _ times: Int) throws -> Tensor {
        guard times > 1 else { return tensor }
        let source = tensor.contiguous()
        let sampleBytes = source.byteCount / max(source.shape[0], 1)
        var shape = source.shape
        shape[0] *= times
        var result = Tensor(zeros: shape, dtype: source.dtype)
        source.withUnsafeBytes { input in
            result.withUnsafeMutableBytes { output in
                for sample in 0..<source.shape[0] {
                    for copy in 0..<times {
                        output.baseAddress!.advanced(by: (sample * times + copy) * sampleBytes)
                            .copyMemory(from: input.baseAddress!.advanced(by: sample * sampleBytes), byteCount: sampleBytes)
                    }
                }
            }
        }
        return result
    }
}
