import Testing
import CUDABackend
import Models
import NunchakuCore
@testable import Pipelines

/// `bench pipeline`'s random-weight pipeline and its timing, on the CPU with tiny configs (the GPU run is the same
/// code with `.cuda`).
struct FluxRandomPipelineTests {
    /// 1 + 1 blocks of one 128-wide head (the smallest INT4 FLUX), CLIP 64 wide, T5 128 wide (4-bit-able), a
    /// four-block VAE (8× upsampling) of 16 latent channels.
    static func tiny(t5Weights: FluxRandomPipeline.T5Weights = .bf16, guidance: Bool = false) -> FluxRandomPipeline {
        FluxRandomPipeline(
            transformer: FluxConfig(numLayers: 1, numSingleLayers: 1, attentionHeadDim: 128, numAttentionHeads: 1,
                                    jointAttentionDim: 128, pooledProjectionDim: 64, guidanceEmbeds: guidance),
            clip: CLIPTextConfig(vocabSize: 50, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 1, numAttentionHeads: 2,
                                 maxPositionEmbeddings: 77, eosTokenId: 2),
            t5: T5EncoderConfig(vocabSize: 40, dModel: 128, dKv: 64, numHeads: 2, dFf: 256, numLayers: 1), t5Weights: t5Weights,
            vae: VAEConfig(latentChannels: 16, blockOutChannels: [8, 8, 8, 8], layersPerBlock: 1, normNumGroups: 4,
                           upBlockTypes: Array(repeating: "UpDecoderBlock2D", count: 4)),
            seed: 5)
    }

    @Test func theBenchmarkRunsTheWholePipelineAndTimesEveryStage() throws {
        var lines: [String] = []
        let report = try FluxPipelineBenchmark.run(Self.tiny(), device: .cpu, sizes: [32], steps: 2, warmUp: false) { lines.append($0) }
        #expect(report.device == "cpu")
        #expect(report.weightBytes == nil)
        #expect(report.runs.map(\.width) == [32])
        #expect(lines.count == 2)   // loaded, then the timed run (the warm-up run is the same `generate` with one step)
        for run in report.runs {
            #expect(run.steps == 2 && run.stepMilliseconds.count == 2)
            #expect(run.t5Tokens == 256)   // schnell-like: no guidance embedder
            #expect(run.warmUpSeconds == nil && run.peakBytes == nil && run.peakLiveBytes == nil)
            #expect(run.clipMilliseconds > 0 && run.t5Milliseconds > 0 && run.decodeMilliseconds > 0)
            #expect(run.totalSeconds >= run.denoiseSeconds)
            #expect(run.image.passed, "image check: \(run.image)")
        }
    }

    /// The synthetic tokenizers give the fixed prompt's letters and pad to each encoder's length.
    @Test func theSyntheticTokenizersPadTheFixedPrompt() throws {
        let tokenizers = try FluxRandomPipeline.tokenizers(clipLength: 77)
        let clip = try tokenizers.clipIDs(["ab c"])
        #expect(clip == [[0, 1, 2] + Array(repeating: 26, count: 74)])
        let t5 = try tokenizers.t5IDs([FluxRandomPipeline.prompt], length: 512)
        let letters = FluxRandomPipeline.prompt.filter { $0 != " " }.count
        #expect(t5[0].count == 512 && t5[0].prefix(5) == [0, 15, 7, 14, 19])   // "a pho…"
        #expect(t5[0].prefix(letters).allSatisfy { $0 < 26 } && t5[0].dropFirst(letters).allSatisfy { $0 == 26 })
    }

    /// The 4-bit T5 runs on the CPU on its dequantized weights; guidance-distilled models take 512 T5 tokens.
    @Test func theAWQT5AndTheDevDefaultsBuildAndEncode() throws {
        let pipeline = try Self.tiny(t5Weights: .awq, guidance: true).makePipeline(device: .cpu)
        let settings = try FluxPipeline.Configuration(prompt: FluxRandomPipeline.prompt, steps: 1, width: 32, height: 32)
            .resolved(for: pipeline.transformerConfig)
        #expect(settings.maxSequenceLength == 512 && settings.guidance == 3.5)
        let embeddings = try pipeline.encode(settings)
        #expect(embeddings.prompt.shape == [1, 512, 128] && embeddings.pooled.shape == [1, 64])
        let values = embeddings.prompt.floats()
        #expect(values.allSatisfy(\.isFinite) && Set(values).count > 100)
    }

    @Test func fastNumericsAndMismatchedConfigsAreRefused() throws {
        #expect(throws: FluxPipelineError.invalidSetting(
            setting: "numerics", reason: "fast numerics run on the GPU only; use the cuda device or exact numerics")) {
            try Self.tiny().makePipeline(device: .cpu, numerics: .fast)
        }
        var mismatched = Self.tiny()
        mismatched.clip.hiddenSize = 32
        let error = try #require(throws: NunchakuError.self) { try mismatched.makePipeline(device: .cpu) }
        #expect(error.description.contains("text_encoder hidden_size = 32 but the transformer needs pooled_projection_dim = 64"))
    }
}
