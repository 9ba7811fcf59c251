import Foundation
import Models
import NunchakuCore
@testable import Pipelines
import SafeTensors
import Testing

/// Folder, config, weight and input errors of the text encoders: typed, naming what is wrong and where.
@Suite struct TextEncoderLoadingTests {
    /// The message of the error `body` throws (failing the test when it throws none).
    private func message(_ body: () throws -> Void) -> String {
        do {
            try body()
        } catch {
            return "\(error)"
        }
        Issue.record("expected an error")
        return ""
    }

    @Test func emptyFolderListsBothMissingFilesAndWhereItLooked() throws {
        let folder = try makeTemporaryFolder()
        let text = message { _ = try CLIPTextModel(folder: folder) }
        #expect(text.contains("config.json"))
        #expect(text.contains("model.safetensors"))
        #expect(text.contains(folder))
    }

    @Test func folderWithOnlyAConfigListsOnlyTheWeights() throws {
        let fixture = try TextEncoderFixture(named: "textenc-t5.safetensors")
        let folder = try makeTemporaryFolder()
        try Data(fixture.config.utf8).write(to: URL(fileURLWithPath: folder + "/config.json"))
        let text = message { _ = try T5EncoderModel(folder: folder) }
        #expect(text.contains("missing weights"))
        #expect(!text.contains("missing config.json"))
    }

    @Test func missingFolderIsNamed() {
        let text = message { _ = try T5EncoderModel(folder: "/nonexistent/text_encoder_2") }
        #expect(text.contains("/nonexistent/text_encoder_2") && text.contains("no such folder"))
    }

    @Test func shardedT5FolderLoads() throws {
        let fixture = try TextEncoderFixture(named: "textenc-t5.safetensors")
        let folder = try makeTemporaryFolder()
        try Data(fixture.config.utf8).write(to: URL(fileURLWithPath: folder + "/config.json"))
        var shards = [SafeTensorsWriter(), SafeTensorsWriter()]
        var weightMap: [String: String] = [:]
        for (index, (name, tensor)) in fixture.weights.sorted(by: { $0.key < $1.key }).enumerated() {
            try shards[index % 2].add(name, tensor)
            weightMap[name] = "model-0000\(index % 2 + 1)-of-00002.safetensors"
        }
        for (index, shard) in shards.enumerated() {
            try shard.write(to: folder + "/model-0000\(index + 1)-of-00002.safetensors")
        }
        let indexJSON = try JSONSerialization.data(withJSONObject: ["metadata": [:] as [String: String], "weight_map": weightMap])
        try indexJSON.write(to: URL(fileURLWithPath: folder + "/model.safetensors.index.json"))
        let hidden = try T5EncoderModel(folder: folder).encode(tokenIDs: try fixture.tokenRows())
        #expect(try relativeError(hidden, fixture.tensor("last_hidden_state")) <= 1e-4)
    }

    @Test func missingAndUnexpectedTensorsAreListedByName() throws {
        let fixture = try TextEncoderFixture(named: "textenc-clip.safetensors")
        var weights = fixture.weights
        weights["encoder.layers.1.mlp.fc2.bias"] = nil
        weights["encoder.layers.1.mlp.fc3.weight"] = Tensor([1], shape: [1])
        weights["final_layer_norm.weight"] = Tensor(zeros: [31], dtype: .f32)
        weights["encoder.layers.0.mlp.fc1.weight"] = try fixture.tensor("encoder.layers.0.mlp.fc1.weight").converted(to: .i64)
        weights["encoder.layers.0.mlp.fc1.bias"] = try fixture.tensor("encoder.layers.0.mlp.fc1.bias").converted(to: .i64)
        let config = try CLIPTextConfig.decode(Data(fixture.config.utf8), source: "fixture")
        let error = try #require(throws: WeightLoadingError.self) {
            _ = try CLIPTextModel(config: config, weights: weights, source: "clip fixture")
        }
        #expect(error.missing == ["encoder.layers.1.mlp.fc2.bias"])
        #expect(error.unexpected == ["encoder.layers.1.mlp.fc3.weight"])
        #expect(error.mismatched.map(\.name) == ["final_layer_norm.weight"])
        #expect(error.unusable.map(\.name) == ["encoder.layers.0.mlp.fc1.bias", "encoder.layers.0.mlp.fc1.weight"])
        #expect(error.source == "clip fixture")
    }

    @Test func wrongPositionIDsBufferIsRejected() throws {
        let fixture = try TextEncoderFixture(named: "textenc-clip.safetensors")
        var weights = fixture.weights
        weights["embeddings.position_ids"] = Tensor([Float](repeating: 0, count: 16), shape: [1, 16]).converted(to: .i64)
        let config = try CLIPTextConfig.decode(Data(fixture.config.utf8), source: "fixture")
        let error = try #require(throws: WeightLoadingError.self) {
            _ = try CLIPTextModel(config: config, weights: weights, source: "fixture")
        }
        #expect(error.unusable.map(\.name) == ["embeddings.position_ids"])
    }

    @Test func configErrorsNameTheKey() throws {
        let fixture = try TextEncoderFixture(named: "textenc-clip.safetensors")
        let withoutKey = fixture.config.replacingOccurrences(of: "\"vocab_size\"", with: "\"vocab_size_renamed\"")
        #expect(message { _ = try CLIPTextConfig.decode(Data(withoutKey.utf8), source: "c.json") }
            .contains("c.json: config has no `vocab_size`"))
        let gelu = fixture.config.replacingOccurrences(of: "\"quick_gelu\"", with: "\"gelu\"")
        #expect(message { _ = try CLIPTextConfig.decode(Data(gelu.utf8), source: "c.json") }.contains("hidden_act `gelu`"))
        let t5 = try TextEncoderFixture(named: "textenc-t5.safetensors")
        let relu = t5.config.replacingOccurrences(of: "\"gated-gelu\"", with: "\"relu\"")
        #expect(message { _ = try T5EncoderConfig.decode(Data(relu.utf8), source: "t.json") }.contains("feed_forward_proj `relu`"))
        let noDistance = t5.config.replacingOccurrences(of: "\"relative_attention_max_distance\"", with: "\"unused\"")
        #expect(try T5EncoderConfig.decode(Data(noDistance.utf8), source: "t.json").relativeAttentionMaxDistance == 128)
    }

    @Test func badTokenInputsAreRejected() throws {
        let fixture = try TextEncoderFixture(named: "textenc-clip.safetensors")
        let model = try CLIPTextModel(config: try CLIPTextConfig.decode(Data(fixture.config.utf8), source: "f"),
                                      weights: fixture.weights, source: "f")
        #expect(message { _ = try model.encode(tokenIDs: [[1, 64]]) }.contains("token id 64 at position 1"))
        #expect(message { _ = try model.encode(tokenIDs: [Array(repeating: 1, count: 17)]) }.contains("max_position_embeddings 16"))
        #expect(message { _ = try model.encode(tokenIDs: [[1, 2], [1]]) }.contains("row 1 has 1 token ids"))
        #expect(message { _ = try model.encode(tokenIDs: []) }.contains("at least one"))
        #expect(throws: NunchakuError.self) {
            _ = try CLIPTextModel(config: model.config, weights: fixture.weights, source: "f", dtype: .f16)
        }
    }
}
