import CUDABackend
import NunchakuCore
import Pipelines

/// `vae.decoder`: the GPU VAE decoder (`CUDAAutoencoderKLDecoder`) against the CPU `AutoencoderKLDecoder` in bf16 on
/// the same random weights and latents (`decode(diffusionLatents:)`, batch 2), for two small configs that together
/// run every kernel path: a FLUX-like one whose mid block is 512 channels wide (the attention's 16-chunk variant,
/// 30 tokens: a partial query block), and a Stable-Diffusion-like one with 4 latent channels (zero-padded to 8),
/// `post_quant_conv` (1×1), RGB padded to 8 and three up blocks. Both round every op output to bf16 and sum in other
/// orders: tolerance 2e-2.
enum VAESelfTests {
    static let cases: [SelfTestCase] = [
        decoder("flux-like", VAEConfig(latentChannels: 16, blockOutChannels: [32, 512], layersPerBlock: 1, normNumGroups: 16,
                                       upBlockTypes: ["UpDecoderBlock2D", "UpDecoderBlock2D"], usePostQuantConv: false,
                                       scalingFactor: 0.3611, shiftFactor: 0.1159), height: 6, width: 5),
        decoder("sd-like", VAEConfig(latentChannels: 4, blockOutChannels: [16, 32, 32], layersPerBlock: 1, normNumGroups: 8,
                                     upBlockTypes: Array(repeating: "UpDecoderBlock2D", count: 3)), height: 5, width: 3),
    ]

    static func decoder(_ label: String, _ config: VAEConfig, height: Int, width: Int) -> SelfTestCase {
        let shape = "\(label) B=2 latent=\(config.latentChannels)x\(height)x\(width) widths=\(config.blockOutChannels)"
        return SelfTestCase(kernel: "vae.decoder", dtype: .bf16, shape: shape, tolerance: 2e-2) { env in
            let weights = RandomStageWeights(shapes: config.decoderWeightShapes, seed: env.seed)
            let latents = env.randomTensor([2, config.latentChannels, height, width], .f32, in: -2...2).tensor
            let gpu = try CUDAAutoencoderKLDecoder(config: config, weights: weights, context: env.context, source: "random")
            let result = try gpu.decode(diffusionLatents: latents)
            let reference = try AutoencoderKLDecoder(config: config, weights: weights, computeDType: .bf16, source: "random")
                .decode(diffusionLatents: latents)
            var comparison = SelfTestComparison()
            try comparison.compare(SelfTestOutput(result), with: reference.floats())
            let milliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try gpu.decode(diffusionLatents: latents) }
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds, note: "GPU vs CPU decoder")
        }
    }
}
