import Models

extension FluxPipeline {
    /// What to generate. Settings left nil take the model's defaults (`FluxModelDefaults`): FLUX.1-dev (a
    /// transformer with `guidance_embeds`) 28 steps, guidance 3.5, 512 T5 tokens; FLUX.1-schnell 4 steps, no
    /// guidance, 256 T5 tokens. Everything else follows diffusers' `FluxPipeline.__call__`.
    public struct Configuration: Sendable, Equatable {
        /// One prompt per image group; the batch is `prompts.count × imagesPerPrompt` images.
        public var prompts: [String]
        /// Images per prompt (`num_images_per_prompt`), each from its own slice of the seeded noise.
        public var imagesPerPrompt: Int
        /// Denoising steps (`num_inference_steps`), at least 1.
        public var steps: Int?
        /// The distilled guidance scale of FLUX.1-dev (`guidance_scale`). Models without a guidance embedder
        /// (schnell) take none: setting it for them is an error rather than silently ignored.
        public var guidance: Float?
        /// Image size in pixels; each a positive multiple of 16.
        public var width: Int
        public var height: Int
        /// The seed of the initial noise: `torch.Generator("cpu").manual_seed(seed)`, so one seed gives the same
        /// noise as diffusers.
        public var seed: UInt64
        /// T5 tokens per prompt (`max_sequence_length`), 1…512.
        public var maxSequenceLength: Int?
        /// Which of PyTorch's CPU `randn` kernels to reproduce (AVX2 on x86 hosts with AVX2, scalar on ARM).
        public var noiseKernel: TorchNormalKernel
        /// How bf16 noise is drawn: PyTorch 2.15's float math (default) or 2.11's rounding after each operation.
        /// Only matters when the pipeline computes in bf16.
        public var reducedPrecisionNoise: TorchReducedPrecisionNormal

        public init(
            prompts: [String], imagesPerPrompt: Int = 1, steps: Int? = nil, guidance: Float? = nil, width: Int = 1024,
            height: Int = 1024, seed: UInt64 = 0, maxSequenceLength: Int? = nil, noiseKernel: TorchNormalKernel = .avx2,
            reducedPrecisionNoise: TorchReducedPrecisionNormal = .floatMath
        ) {
            self.prompts = prompts
            self.imagesPerPrompt = imagesPerPrompt
            self.steps = steps
            self.guidance = guidance
            self.width = width
            self.height = height
            self.seed = seed
            self.maxSequenceLength = maxSequenceLength
            self.noiseKernel = noiseKernel
            self.reducedPrecisionNoise = reducedPrecisionNoise
        }

        /// One prompt.
        public init(prompt: String, steps: Int? = nil, guidance: Float? = nil, width: Int = 1024, height: Int = 1024,
                    seed: UInt64 = 0, batch: Int = 1) {
            self.init(prompts: [prompt], imagesPerPrompt: batch, steps: steps, guidance: guidance, width: width,
                      height: height, seed: seed)
        }

        /// The number of images.
        public var batch: Int { prompts.count * imagesPerPrompt }

        /// This configuration with the model's defaults filled in and every setting checked.
        /// - Throws: `FluxPipelineError.invalidSetting` naming the setting and what is wrong with it.
        public func resolved(for transformer: FluxConfig) throws -> Resolved {
            let defaults = FluxModelDefaults(transformer: transformer)
            let steps = self.steps ?? defaults.steps
            let length = maxSequenceLength ?? defaults.maxSequenceLength
            guard !prompts.isEmpty else { throw invalid("prompts", "give at least one prompt") }
            guard imagesPerPrompt >= 1 else { throw invalid("imagesPerPrompt", "\(imagesPerPrompt); must be at least 1") }
            guard steps >= 1 else { throw invalid("steps", "\(steps); must be at least 1") }
            for (name, value) in [("width", width), ("height", height)] where value < 16 || value % 16 != 0 {
                throw invalid(name, "\(value) pixels; must be a positive multiple of 16 (the VAE's 8× times the 2×2 latent patches)")
            }
            guard (1...512).contains(length) else {
                throw invalid("maxSequenceLength", "\(length); T5 takes 1…512 tokens (FLUX was trained with 256 or 512)")
            }
            let guidanceValue: Float?
            switch (guidance, transformer.guidanceEmbeds) {
            case let (value?, true):
                guard value.isFinite else { throw invalid("guidance", "\(value) is not a finite number") }
                guidanceValue = value
            case (nil, true): guidanceValue = defaults.guidance
            case let (value?, false):
                throw invalid("guidance", "\(value), but this model has no guidance embedder (guidance_embeds = false, e.g. FLUX.1-schnell); leave it unset")
            case (nil, false): guidanceValue = nil
            }
            return Resolved(prompts: prompts, imagesPerPrompt: imagesPerPrompt, steps: steps, guidance: guidanceValue,
                            width: width, height: height, seed: seed, maxSequenceLength: length, noiseKernel: noiseKernel,
                            reducedPrecisionNoise: reducedPrecisionNoise)
        }

        private func invalid(_ setting: String, _ reason: String) -> FluxPipelineError {
            .invalidSetting(setting: setting, reason: reason)
        }
    }

    /// A configuration with every default filled in and checked against the model.
    public struct Resolved: Sendable, Equatable {
        public let prompts: [String]
        public let imagesPerPrompt: Int
        public let steps: Int
        /// nil for models without a guidance embedder.
        public let guidance: Float?
        public let width: Int
        public let height: Int
        public let seed: UInt64
        public let maxSequenceLength: Int
        public let noiseKernel: TorchNormalKernel
        public let reducedPrecisionNoise: TorchReducedPrecisionNormal

        /// The number of images.
        public var batch: Int { prompts.count * imagesPerPrompt }
    }
}

/// The settings FLUX.1 models are used with, told apart by the transformer config's `guidance_embeds`:
/// guidance-distilled (dev) 28 steps, guidance 3.5, 512 T5 tokens; timestep-distilled (schnell) 4 steps, no
/// guidance, 256 T5 tokens (BFL's defaults).
public struct FluxModelDefaults: Sendable, Equatable {
    public let steps: Int
    public let guidance: Float?
    public let maxSequenceLength: Int

    public init(transformer: FluxConfig) {
        if transformer.guidanceEmbeds {
            (steps, guidance, maxSequenceLength) = (28, 3.5, 512)
        } else {
            (steps, guidance, maxSequenceLength) = (4, nil, 256)
        }
    }
}
