import CUDABackend
import Dispatch
import NunchakuCore

/// Timings of the GPU pipeline stages at full size with random weights (no files): FLUX.1's VAE decoder, CLIP-L,
/// T5-XXL in bf16, and T5-XXL with every block linear 4-bit (Nunchaku's TinyChat format).
public enum StageBenchmark {
    public enum Stage: String, Sendable, CaseIterable {
        case vae, clip, t5
        case t5AWQ = "t5-awq"
    }

    /// What one stage measured.
    public struct Timing: Sendable {
        public let stage: Stage
        public let shape: String
        public let loadSeconds: Double
        /// Weights held on the GPU after loading.
        public let weightBytes: Int
        /// Wall-clock time of one call (host tensors in, host tensors out), median of the repetitions after one
        /// warm-up call.
        public let milliseconds: Double
        /// The pool's peak of live buffers and of reserved memory during the timed calls (weights included).
        public let peakLiveBytes: Int
        public let peakReservedBytes: Int?
        /// The root mean square of the last output and its count of non-finite values.
        public let outputRMS: Double
        public let nonFinite: Int
    }

    /// Builds `stage` at full size on `context`, runs it once to warm up (kernels compile), then `repetitions`
    /// times. `imageSize` is the decoded image's side (VAE latents are imageSize/8), `t5Tokens` T5's sequence length.
    public static func run(_ stage: Stage, context: CUDAContext, imageSize: Int = 1024, t5Tokens: Int = 512,
                           repetitions: Int = 3, seed: UInt64 = 0) throws -> Timing {
        let loadStart = DispatchTime.now()
        let (shape, weightBytes, call): (String, Int, () throws -> Tensor)
        switch stage {
        case .vae:
            let config = VAEConfig.flux
            let decoder = try CUDAAutoencoderKLDecoder(
                config: config, weights: RandomStageWeights(shapes: config.decoderWeightShapes, seed: seed), context: context)
            let side = imageSize / config.upsamplingFactor
            let latents = Tensor((0..<(config.latentChannels * side * side)).map { Float(($0 * 7919) % 2001) / 1000 - 1 },
                                 shape: [1, config.latentChannels, side, side])
            (shape, weightBytes, call) = ("latents [1, 16, \(side), \(side)] → image \(imageSize)²", decoder.deviceWeightBytes,
                                          { try decoder.decode(diffusionLatents: latents) })
        case .clip:
            let config = CLIPTextConfig.clipL
            let model = try CUDACLIPTextModel(
                config: config, weights: RandomStageWeights(shapes: config.weightShapes, seed: seed), source: "random", context: context)
            let ids = [(0..<77).map { ($0 * 613) % config.vocabSize }]
            (shape, weightBytes, call) = ("CLIP-L, 77 tokens", model.deviceWeightBytes, { try model.encode(tokenIDs: ids).lastHiddenState })
        case .t5, .t5AWQ:
            let config = T5EncoderConfig.t5XXL
            let weights: any TensorProvider = stage == .t5
                ? RandomStageWeights(shapes: config.weightShapes, seed: seed)
                : try TinyChatSyntheticCheckpoint.t5(config: config, seed: seed)
            let model = try CUDAT5EncoderModel(config: config, weights: weights, source: "random", context: context)
            let ids = [(0..<t5Tokens).map { ($0 * 389) % config.vocabSize }]
            (shape, weightBytes, call) = ("T5-XXL\(stage == .t5 ? "" : " W4A16 g128"), \(t5Tokens) tokens", model.deviceWeightBytes,
                                          { try model.encode(tokenIDs: ids) })
        }
        try context.synchronize()
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e9
        _ = try call()
        try context.memoryPool.resetPeak()
        var times: [Double] = []
        var output = Tensor(zeros: [1], dtype: .f32)
        for _ in 0..<max(1, repetitions) {
            let start = DispatchTime.now()
            output = try call()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6)
        }
        let statistics = try context.memoryPool.statistics()
        let values = output.floats()
        let finite = values.filter(\.isFinite)
        let rms = (finite.reduce(0) { $0 + Double($1) * Double($1) } / Double(max(1, finite.count))).squareRoot()
        return Timing(stage: stage, shape: shape, loadSeconds: loadSeconds, weightBytes: weightBytes,
                      milliseconds: times.sorted()[times.count / 2], peakLiveBytes: statistics.peakLiveBytes,
                      peakReservedBytes: statistics.peakReservedBytes, outputRMS: rms, nonFinite: values.count - finite.count)
    }
}
