import NunchakuCore
@testable import Pipelines
import Testing

/// The random-weight providers behind the GPU self-tests and full-size timings: deterministic per (seed, name),
/// in the documented ranges, and exactly the tensors the strict CPU loaders expect.
@Suite struct RandomStageWeightsTests {
    @Test func valuesDependOnSeedAndNameOnly() throws {
        let shapes = ["a.weight": [4, 16], "b.norm.weight": [16], "c.bias": [16]]
        let first = RandomStageWeights(shapes: shapes, seed: 1)
        #expect(try first.tensor(named: "a.weight").floats() == RandomStageWeights(shapes: shapes, seed: 1).tensor(named: "a.weight").floats())
        #expect(try first.tensor(named: "a.weight").floats() != RandomStageWeights(shapes: shapes, seed: 2).tensor(named: "a.weight").floats())
        let linear = try first.tensor(named: "a.weight").floats()
        #expect(linear.allSatisfy { abs($0) <= 0.25 + 1e-3 } && Set(linear).count > 32)
        #expect(try first.tensor(named: "b.norm.weight").floats().allSatisfy { (0.74...1.26).contains($0) })
        #expect(try first.tensor(named: "c.bias").floats().allSatisfy { abs($0) <= 0.101 })
        #expect(throws: NunchakuError.self) { _ = try first.tensor(named: "missing") }
    }

    @Test func shapeTablesAreExactlyWhatTheCPULoadersRead() throws {
        let clip = CLIPTextConfig(vocabSize: 50, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 2, numAttentionHeads: 2,
                                  maxPositionEmbeddings: 8, eosTokenId: 2)
        _ = try CLIPTextModel(config: clip, weights: RandomStageWeights(shapes: clip.weightShapes, seed: 0), source: "random")
        let t5 = T5EncoderConfig(vocabSize: 30, dModel: 16, dKv: 8, numHeads: 2, dFf: 24, numLayers: 2)
        _ = try T5EncoderModel(config: t5, weights: RandomStageWeights(shapes: t5.weightShapes, seed: 0), source: "random")
        for vae in [VAEConfig(latentChannels: 4, blockOutChannels: [8, 16], normNumGroups: 4, upBlockTypes: ["UpDecoderBlock2D", "UpDecoderBlock2D"]),
                    VAEConfig(latentChannels: 16, blockOutChannels: [8, 16, 16], layersPerBlock: 2, normNumGroups: 4,
                              upBlockTypes: Array(repeating: "UpDecoderBlock2D", count: 3), usePostQuantConv: false)] {
            _ = try AutoencoderKLDecoder(config: vae, weights: RandomStageWeights(shapes: vae.decoderWeightShapes, seed: 0))
        }
        // Full sizes: the published parameter counts (FLUX.1's VAE decoder is also documented in docs/vae.md).
        #expect(VAEConfig.flux.decoderWeightShapes.values.reduce(0) { $0 + $1.reduce(1, *) } == 49_545_475)
        #expect(T5EncoderConfig.t5XXL.weightShapes.values.reduce(0) { $0 + $1.reduce(1, *) } == 4_762_310_656)
        #expect(CLIPTextConfig.clipL.weightShapes.values.reduce(0) { $0 + $1.reduce(1, *) } == 123_060_480)
    }

    @Test func syntheticFourBitT5ReplacesEveryBlockLinear() throws {
        let config = T5EncoderConfig(vocabSize: 30, dModel: 128, dKv: 64, numHeads: 2, dFf: 256, numLayers: 1)
        let tensors = try TinyChatSyntheticCheckpoint.t5(config: config, seed: 5)
        #expect(tensors.keys.filter { $0.hasSuffix(".qweight") }.count == 7)
        #expect(!tensors.keys.contains { $0.hasPrefix("encoder.block.") && $0.hasSuffix("DenseReluDense.wo.weight") })
        #expect(tensors["encoder.block.0.layer.1.DenseReluDense.wo.scales"]?.shape == [8, 128])
        _ = try T5EncoderModel(config: config, weights: TinyChatDequantizedWeights(tensors), source: "synthetic")
    }
}

/// The GPU T5's bias table by distance holds exactly the CPU's `[H, S, S]` bias.
@Suite struct T5BiasByDistanceTests {
    @Test func everyQueryKeyPairReadsTheCPUBias() {
        let (heads, tokens, buckets) = (3, 40, 32)
        let table = (0..<(buckets * heads)).map { Float($0) * 0.25 - 7 }
        let full = T5RelativePosition.bias(table: table, heads: heads, tokens: tokens, numBuckets: buckets, maxDistance: 20)
        let byDistance = T5RelativePosition.biasByDistance(table: table, heads: heads, tokens: tokens, numBuckets: buckets, maxDistance: 20)
        #expect(byDistance.shape == [heads, 2 * tokens - 1])
        let values = byDistance.floats()
        for head in 0..<heads {
            for query in 0..<tokens {
                for key in 0..<tokens {
                    #expect(values[head * (2 * tokens - 1) + key - query + tokens - 1] == full[(head * tokens + query) * tokens + key])
                }
            }
        }
    }
}
