import CUDABackend
import Models
import NunchakuCore

/// `flux.transformer`: the whole FLUX transformer on the GPU (`FluxCUDATransformer`) against the CPU model
/// (`FluxTransformer` in bf16, SVDQuant layers kernel-exact) on the same random weights and inputs
/// (`FluxRandomCheckpoint`, seeded per case), for dense bf16 (diffusers layout), INT4 and NVFP4 (Nunchaku layout)
/// models of 2 + 3 blocks, 2 heads of 128, batch 2. Both sides round every op output to bf16, but sum in other
/// orders (GEMMs, attention with P rounded to bf16, the W4A4 low-rank branch); the differences grow through the
/// blocks to about 1e-2, hence the tolerance of 3e-2. The time is one forward, after a warm-up.
///
/// `flux.transformer.fast`: the INT4 and NVFP4 models with the fast (FP8, sm_90+) W4A4 numerics against the CPU
/// model with every SVDQuant layer as the dense layer it stands for (`FluxTransformer(denseEquivalentOf:)`, bf16),
/// at batch 1 (the gated residuals folded into the FP8 epilogues) and batch 2 (separate gated adds): what the fast
/// path costs end to end, about 1.2e-2 on an H200 (the exact path: about 2.5e-2); same tolerance.
enum FluxSelfTests {
    static let cases: [SelfTestCase] = FluxRandomCheckpoint.Format.allCases.map { transformer($0) }
        + [FluxRandomCheckpoint.Format.int4, .nvfp4].flatMap { format in [1, 2].map { fast(format, batch: $0) } }

    static let (batch, imageTokens, textTokens) = (2, 96, 24)

    /// A small model with FLUX's head dimension and RoPE axes; guidance embedded except for NVFP4 (schnell-like).
    static func config(_ format: FluxRandomCheckpoint.Format) -> FluxConfig {
        FluxConfig(numLayers: 2, numSingleLayers: 3, attentionHeadDim: 128, numAttentionHeads: 2, jointAttentionDim: 256,
                   pooledProjectionDim: 128, guidanceEmbeds: format != .nvfp4)
    }

    /// The shape text of the cases on `fastModel`.
    static let fastModelShape = "B=\(batch) N=\(imageTokens) T=\(textTokens) blocks=2+3 D=256 int4 fast"

    /// The small INT4 model with fast numerics and its inputs (`batch`, `imageTokens`, `textTokens`), for cases that
    /// compare fast forwards with each other (`flux.prefetch`, `flux.side_stream`).
    /// - Throws: `SelfTestSkip` below the fast numerics' compute capability.
    static func fastModel(_ env: SelfTestEnvironment) throws -> (model: FluxCUDATransformer, inputs: FluxCUDAInputs, config: FluxConfig) {
        guard env.context.device.computeCapability >= CUDAW4A4FastEngine.minimumComputeCapability else {
            throw SelfTestSkip("fast numerics need \(CUDAW4A4FastEngine.minimumComputeCapability), this GPU is \(env.context.device.computeCapability)")
        }
        let config = config(.int4)
        let checkpoint = try FluxRandomCheckpoint(config: config, format: .int4, seed: env.seed)
        let model = try FluxCUDATransformer(random: checkpoint, context: env.context, numerics: .fast)
        let inputs = try FluxCUDAInputs(config: config, context: env.context, inputs: try FluxRandomInputs.make(
            config: config, batch: batch, imageTokens: imageTokens, textTokens: textTokens, seed: env.seed))
        return (model, inputs, config)
    }

    /// The case for `format`; with `.fp8` attention (`attention.fp8.flux`, skipped off sm_90a) under `tolerance`.
    static func transformer(_ format: FluxRandomCheckpoint.Format, attention: AttentionPrecision = .bf16,
                            tolerance: Double = 3e-2) -> SelfTestCase {
        let shape = "B=\(batch) N=\(imageTokens) T=\(textTokens) blocks=2+3 D=256 \(format)"
        let kernel = attention == .fp8 ? "attention.fp8.flux" : "flux.transformer"
        return SelfTestCase(kernel: kernel, dtype: .bf16, shape: shape, tolerance: tolerance) { env in
            if attention == .fp8 { try env.requireFP8Attention() }
            let config = Self.config(format)
            let checkpoint = try FluxRandomCheckpoint(config: config, format: format, seed: env.seed)
            let inputs = try FluxRandomInputs.make(
                config: config, batch: batch, imageTokens: imageTokens, textTokens: textTokens, seed: env.seed)
            let gpu = try FluxCUDATransformer(random: checkpoint, context: env.context, attention: attention)
            let uploaded = try FluxCUDAInputs(config: config, context: env.context, inputs: inputs)
            let result = try env.download(try gpu.forward(uploaded))
            let reference = try FluxTransformer(random: checkpoint, computeDType: .bf16).forward(inputs: inputs)
            var comparison = SelfTestComparison()
            try comparison.compare(result, with: reference.floats())
            let milliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try gpu.forward(uploaded) }
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds, note: "GPU (\(attention) attention) vs CPU model, one forward")
        }
    }

    /// The fast-numerics case for `format` at `batch` (skipped below sm_90).
    static func fast(_ format: FluxRandomCheckpoint.Format, batch: Int) -> SelfTestCase {
        let shape = "B=\(batch) N=\(imageTokens) T=\(textTokens) blocks=2+3 D=256 \(format) fast"
        return SelfTestCase(kernel: "flux.transformer.fast", dtype: .bf16, shape: shape, tolerance: 3e-2) { env in
            let capability = env.context.device.computeCapability
            guard capability >= CUDAW4A4FastEngine.minimumComputeCapability else {
                throw SelfTestSkip("fast numerics need \(CUDAW4A4FastEngine.minimumComputeCapability), this GPU is \(capability)")
            }
            let config = Self.config(format)
            let checkpoint = try FluxRandomCheckpoint(config: config, format: format, seed: env.seed)
            let inputs = try FluxRandomInputs.make(
                config: config, batch: batch, imageTokens: imageTokens, textTokens: textTokens, seed: env.seed)
            let gpu = try FluxCUDATransformer(random: checkpoint, context: env.context, numerics: .fast)
            let uploaded = try FluxCUDAInputs(config: config, context: env.context, inputs: inputs)
            let result = try env.download(try gpu.forward(uploaded))
            let reference = try FluxTransformer(denseEquivalentOf: checkpoint, computeDType: .bf16).forward(inputs: inputs)
            var comparison = SelfTestComparison()
            try comparison.compare(result, with: reference.floats())
            let milliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try gpu.forward(uploaded) }
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   note: "GPU fast W4A4 vs the dense-equivalent CPU model, one forward")
        }
    }
}
