import Foundation
import NunchakuCore
@testable import Pipelines
import Testing

/// The CPU CLIP text model and T5 encoder against transformers (fixtures from
/// scripts/parity/text_encoders_reference.py: small random-weight models, fp32).
@Suite struct TextEncoderParityTests {
    @Test func clipMatchesTransformersInF32() throws {
        let fixture = try TextEncoderFixture(named: "textenc-clip.safetensors")
        let model = try CLIPTextModel(folder: try fixture.writeFolder())
        let output = try model.encode(tokenIDs: try fixture.tokenRows())
        #expect(output.lastHiddenState.dtype == .f32)
        #expect(try relativeError(output.lastHiddenState, fixture.tensor("last_hidden_state")) <= 1e-4)
        #expect(try relativeError(output.pooled, fixture.tensor("pooler_output")) <= 1e-4)
        // The fixture's rows put EOS (50) at 5 and 6.
        #expect(try fixture.tokenRows().map(model.poolingPosition) == [5, 6])
    }

    @Test func clipLegacyEOSConfigPoolsAtTheLargestID() throws {
        let fixture = try TextEncoderFixture(named: "textenc-clip.safetensors")
        var config = try CLIPTextConfig.decode(Data(fixture.config.utf8), source: "fixture")
        config.eosTokenId = 2
        let model = try CLIPTextModel(config: config, weights: fixture.weights, source: "fixture")
        #expect(try fixture.tokenRows().map(model.poolingPosition) == [5, 2])
        let output = try model.encode(tokenIDs: try fixture.tokenRows())
        #expect(try relativeError(output.pooled, fixture.tensor("pooler_output_legacy")) <= 1e-4)
    }

    @Test func clipAcceptsHubNamesUnderTextModel() throws {
        let fixture = try TextEncoderFixture(named: "textenc-clip.safetensors")
        var weights = Dictionary(uniqueKeysWithValues: fixture.weights.map { ("text_model." + $0.key, $0.value) })
        weights["text_model.embeddings.position_ids"] = Tensor((0..<16).map(Float.init), shape: [1, 16]).converted(to: .i64)
        let model = try CLIPTextModel(folder: try fixture.writeFolder(weights: weights))
        let output = try model.encode(tokenIDs: try fixture.tokenRows())
        #expect(try relativeError(output.lastHiddenState, fixture.tensor("last_hidden_state")) <= 1e-4)
    }

    @Test func clipInBF16StaysCloseToTheF32Reference() throws {
        let fixture = try TextEncoderFixture(named: "textenc-clip.safetensors")
        let model = try CLIPTextModel(folder: try fixture.writeFolder(), dtype: .bf16)
        let output = try model.encode(tokenIDs: try fixture.tokenRows())
        #expect(output.lastHiddenState.dtype == .bf16 && output.pooled.dtype == .bf16)
        let error = try relativeError(output.pooled, fixture.tensor("pooler_output"))
        #expect(error > 0 && error <= 3e-2)
    }

    @Test func t5MatchesTransformersInF32() throws {
        let fixture = try TextEncoderFixture(named: "textenc-t5.safetensors")
        let model = try T5EncoderModel(folder: try fixture.writeFolder())
        let hidden = try model.encode(tokenIDs: try fixture.tokenRows())
        #expect(hidden.dtype == .f32)
        #expect(try relativeError(hidden, fixture.tensor("last_hidden_state")) <= 1e-4)
    }

    @Test func t5InBF16StaysCloseToTheF32Reference() throws {
        let fixture = try TextEncoderFixture(named: "textenc-t5.safetensors")
        let model = try T5EncoderModel(folder: try fixture.writeFolder(), dtype: .bf16)
        let hidden = try model.encode(tokenIDs: try fixture.tokenRows())
        #expect(hidden.dtype == .bf16)
        let error = try relativeError(hidden, fixture.tensor("last_hidden_state"))
        #expect(error > 0 && error <= 3e-2)
    }

    @Test func bf16CheckpointGivesTheSameResultAsRoundingAnF32One() throws {
        let fixture = try TextEncoderFixture(named: "textenc-t5.safetensors")
        let bf16Weights = fixture.weights.mapValues { $0.converted(to: .bf16) }
        let fromF32 = try T5EncoderModel(folder: try fixture.writeFolder(), dtype: .bf16)
        let fromBF16 = try T5EncoderModel(folder: try fixture.writeFolder(weights: bf16Weights), dtype: .bf16)
        let ids = try fixture.tokenRows()
        #expect(try fromBF16.encode(tokenIDs: ids).doubles() == fromF32.encode(tokenIDs: ids).doubles())
        // The same bf16 file computed in f32 differs from the f32 weights only by the weight rounding.
        let widened = try T5EncoderModel(folder: try fixture.writeFolder(weights: bf16Weights), dtype: .f32)
        let error = try relativeError(widened.encode(tokenIDs: ids), fixture.tensor("last_hidden_state"))
        #expect(error > 0 && error <= 3e-2)
    }

    @Test func t5AcceptsTheTiedEmbeddingCopy() throws {
        let fixture = try TextEncoderFixture(named: "textenc-t5.safetensors")
        var weights = fixture.weights
        weights["encoder.embed_tokens.weight"] = try fixture.tensor("shared.weight")
        let both = try T5EncoderModel(config: try T5EncoderConfig.decode(Data(fixture.config.utf8), source: "fixture"),
                                      weights: weights, source: "fixture")
        weights["shared.weight"] = nil
        let tiedOnly = try T5EncoderModel(folder: try fixture.writeFolder(weights: weights))
        for model in [both, tiedOnly] {
            #expect(try relativeError(model.encode(tokenIDs: try fixture.tokenRows()), fixture.tensor("last_hidden_state")) <= 1e-4)
        }
    }

    @Test func t5BucketsMatchTransformers() throws {
        let fixture = try TextEncoderFixture(named: "textenc-t5.safetensors")
        let expected = try fixture.tensor("buckets_relative").doubles().map { Int($0) }
        let buckets = (-200...200).map { T5RelativePosition.bucket($0, numBuckets: 32, maxDistance: 128) }
        #expect(buckets == expected)
        // Hand-checked anchors: exact below 8, sign offset 16, the last bucket per sign beyond max_distance.
        #expect(T5RelativePosition.bucket(-3, numBuckets: 32, maxDistance: 128) == 3)
        #expect(T5RelativePosition.bucket(3, numBuckets: 32, maxDistance: 128) == 19)
        #expect(T5RelativePosition.bucket(-500, numBuckets: 32, maxDistance: 128) == 15)
        #expect(T5RelativePosition.bucket(500, numBuckets: 32, maxDistance: 128) == 31)
    }
}
