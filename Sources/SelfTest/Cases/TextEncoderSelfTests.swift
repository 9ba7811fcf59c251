import CUDABackend
import NunchakuCore
import Pipelines

/// `clip.text`, `t5.encoder`, `t5.awq`, `awq.tinychat`: the GPU text encoders against the CPU models in bf16 on the
/// same random weights (`RandomStageWeights`, seeded per case) and random token ids, batch 2, and the TinyChat
/// 4-bit dequantization kernel against the CPU's bit for bit.
///
/// CLIP runs heads of 128 (encoder_attention.cu's 4-chunk variant) with the causal mask over 77 tokens; T5 heads of
/// 64 (2-chunk) with the relative position bias over 72 tokens (max distance 20, so the log buckets are used), dense
/// and with every block linear a random TinyChat layer (the CPU reads it dequantized). Both sides round every op
/// output to bf16 but sum in other orders (GEMMs, attention), which grows through the layers: tolerance 3e-2.
enum TextEncoderSelfTests {
    static let cases: [SelfTestCase] = [clip, t5(quantized: false), t5(quantized: true), dequantize]

    static let clipConfig = CLIPTextConfig(
        vocabSize: 1000, hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 2, numAttentionHeads: 2,
        maxPositionEmbeddings: 77, eosTokenId: 2)
    static let t5Config = T5EncoderConfig(
        vocabSize: 500, dModel: 128, dKv: 64, numHeads: 2, dFf: 256, numLayers: 2, relativeAttentionMaxDistance: 20)

    static func tokenIDs(rows: Int, tokens: Int, vocabulary: Int, _ random: inout SelfTestRandom) -> [[Int]] {
        (0..<rows).map { _ in (0..<tokens).map { _ in Int(random.next() % UInt64(vocabulary)) } }
    }

    static let clip = SelfTestCase(kernel: "clip.text", dtype: .bf16, shape: "B=2 S=77 D=256 heads=2x128 layers=2", tolerance: 3e-2) { env in
        let weights = RandomStageWeights(shapes: clipConfig.weightShapes, seed: env.seed)
        let ids = tokenIDs(rows: 2, tokens: 77, vocabulary: clipConfig.vocabSize, &env.random)
        let gpu = try CUDACLIPTextModel(config: clipConfig, weights: weights, source: "random", context: env.context)
        let result = try gpu.encode(tokenIDs: ids)
        let reference = try CLIPTextModel(config: clipConfig, weights: weights, source: "random", dtype: .bf16).encode(tokenIDs: ids)
        var comparison = SelfTestComparison()
        try comparison.compare(SelfTestOutput(result.lastHiddenState), with: reference.lastHiddenState.floats())
        try comparison.compare(SelfTestOutput(result.pooled), with: reference.pooled.floats())
        let milliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try gpu.encode(tokenIDs: ids) }
        return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds, note: "GPU vs CPU model: hidden states and pooled")
    }

    static func t5(quantized: Bool) -> SelfTestCase {
        SelfTestCase(kernel: quantized ? "t5.awq" : "t5.encoder", dtype: .bf16,
                     shape: "B=2 S=72 D=128 heads=2x64 layers=2" + (quantized ? " W4A16 g128" : ""), tolerance: 3e-2) { env in
            let (gpuWeights, cpuWeights) = try t5Weights(quantized: quantized, seed: env.seed)
            let ids = tokenIDs(rows: 2, tokens: 72, vocabulary: t5Config.vocabSize, &env.random)
            let gpu = try CUDAT5EncoderModel(config: t5Config, weights: gpuWeights, source: "random", context: env.context)
            let result = try gpu.encode(tokenIDs: ids)
            let reference = try T5EncoderModel(config: t5Config, weights: cpuWeights, source: "random", dtype: .bf16).encode(tokenIDs: ids)
            var comparison = SelfTestComparison()
            try comparison.compare(SelfTestOutput(result), with: reference.floats())
            let milliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try gpu.encode(tokenIDs: ids) }
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   note: quantized ? "GPU (4-bit weights) vs CPU on the dequantized weights" : "GPU vs CPU model")
        }
    }

    /// The weights the GPU model reads and those the CPU reference reads (the dequantized ones for 4-bit layers).
    static func t5Weights(quantized: Bool, seed: UInt64) throws -> (any TensorProvider, any TensorProvider) {
        guard quantized else {
            let weights = RandomStageWeights(shapes: t5Config.weightShapes, seed: seed)
            return (weights, weights)
        }
        let checkpoint = try TinyChatSyntheticCheckpoint.t5(config: t5Config, seed: seed)
        return (checkpoint, TinyChatDequantizedWeights(checkpoint))
    }

    /// The dequantization kernel at T5-XXL's `wi` shape: bit-exact with `TinyChatW4Layer.dequantizedWeight()`.
    static let dequantize = SelfTestCase(kernel: "awq.tinychat", dtype: .bf16, shape: "N=10240 K=4096 g128", tolerance: 0) { env in
        let (n, k) = (10240, 4096)
        let tensors = try TinyChatSyntheticCheckpoint.layer(name: "wi", outFeatures: n, inFeatures: k, seed: env.seed)
        let layer = try TinyChatW4Layer(name: "wi", provider: tensors)
        let groups = layer.storedGroups
        let qweight = try DeviceTensor(uploading: layer.qweight, context: env.context)
        let scales = try DeviceTensor(uploading: Tensor(layer.scales, shape: [groups, n]), context: env.context)
        let zeros = try DeviceTensor(uploading: Tensor(layer.zeros, shape: [groups, n]), context: env.context)
        let output = try env.poisonedOutput([n, k], .bf16)
        let launch = { try env.context.dequantizeTinyChatW4(qweight: qweight, scales: scales, zeros: zeros, groupSize: 128, into: output) }
        try launch()
        var comparison = SelfTestComparison()
        try comparison.compare(env.download(output), with: layer.dequantizedWeight().floats())
        let milliseconds = try env.time(launch)
        return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds, bytes: Double(n * k / 2 + n * k * 2),
                               note: "4-bit codes → bf16 weight")
    }
}
