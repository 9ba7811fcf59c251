import Foundation
import Testing
import Models
import NunchakuCore
@testable import Pipelines

/// Finding a pipeline on disk: folders missing parts, Hub repo ids in the local Hugging Face cache, models that do
/// not fit together.
struct FluxPipelineLoadingTests {
    @Test func aFolderMissingPartsListsEachWithWhereItWasLookedFor() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        try FileManager.default.removeItem(atPath: "\(fixture.folder)/vae/diffusion_pytorch_model.safetensors")
        try FileManager.default.removeItem(atPath: "\(fixture.folder)/tokenizer_2/tokenizer.json")
        try FileManager.default.removeItem(atPath: "\(fixture.folder)/text_encoder")
        let error = try #require(throws: FluxPipelineError.self) { try FluxPipelineFolder(root: fixture.folder) }
        guard case let .missingParts(folder, missing) = error else {
            Issue.record("expected missingParts, got \(error)")
            return
        }
        #expect(folder == fixture.folder)
        #expect(missing == [
            "tokenizer_2/tokenizer.json (looked for \(fixture.folder)/tokenizer_2/tokenizer.json)",
            "text_encoder/config.json (looked for \(fixture.folder)/text_encoder/config.json)",
            "text_encoder/*.safetensors (weights; looked in \(fixture.folder)/text_encoder/)",
            "vae/*.safetensors (weights; looked in \(fixture.folder)/vae/)",
        ])
    }

    /// FLUX repos ship CLIP as vocab.json + merges.txt; transformers builds the same tokenizer from them.
    @Test func clipVocabularyFilesGiveTheIDsOfTheTokenizerJSON() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        let withJSON = try FluxPromptTokenizers(folder: FluxPipelineFolder(root: fixture.folder))
        let tokenizerFolder = "\(fixture.folder)/tokenizer"
        let file = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(tokenizerFolder)/tokenizer.json")))
        let model = try #require((file as? [String: Any])?["model"] as? [String: Any])
        let merges: [String] = try #require(model["merges"] as? [Any]).map { (entry: Any) -> String in
            if let pair = entry as? [String] { return pair.joined(separator: " ") }
            return entry as? String ?? ""
        }
        try JSONSerialization.data(withJSONObject: try #require(model["vocab"])).write(to: URL(fileURLWithPath: "\(tokenizerFolder)/vocab.json"))
        try Data(("#version: 0.2\n" + merges.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: "\(tokenizerFolder)/merges.txt"))
        try FileManager.default.removeItem(atPath: "\(tokenizerFolder)/tokenizer.json")

        let fromVocabulary = try FluxPromptTokenizers(folder: FluxPipelineFolder(root: fixture.folder))
        let corpus = try #require(try FixtureFiles.json("tokenizers/corpus.json").arrayElements?.compactMap(\.stringValue))
        try #require(corpus.count == 30)
        #expect(try fromVocabulary.clipIDs(corpus) == withJSON.clipIDs(corpus))
        #expect(fromVocabulary.clipPadID == withJSON.clipPadID)

        try FileManager.default.removeItem(atPath: "\(tokenizerFolder)/merges.txt")
        let error = try #require(throws: FluxPipelineError.self) { try FluxPipelineFolder(root: fixture.folder) }
        #expect(error.description.contains("tokenizer/tokenizer.json or tokenizer/vocab.json + merges.txt (looked in \(tokenizerFolder))"))
    }

    @Test func aReplacedTransformerNeedsNoTransformerFolder() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        let moved = fixture.folder + "-transformer"
        try FileManager.default.moveItem(atPath: "\(fixture.folder)/transformer", toPath: moved)
        defer { try? FileManager.default.removeItem(atPath: moved) }
        #expect(throws: FluxPipelineError.self) { try FluxPipelineFolder(root: fixture.folder) }
        let pipeline = try FluxPipelineLoader.load(
            fixture.folder, options: FluxPipelineLoadOptions(dtype: .f32, transformerPath: moved), cache: HuggingFaceCache(folders: []))
        #expect(pipeline.transformerConfig.guidanceEmbeds)
    }

    @Test func repoIDsAreFoundInTheCacheAtTheRevisionMainNames() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        let cache = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let repo = "\(cache)/models--tiny-org--Tiny.FLUX_1"
        try FileManager.default.createDirectory(atPath: "\(repo)/snapshots/0000old", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(repo)/refs", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(repo)/snapshots/abc123", withDestinationPath: fixture.folder)
        try Data("abc123\n".utf8).write(to: URL(fileURLWithPath: "\(repo)/refs/main"))

        let hub = HuggingFaceCache(folders: ["\(cache)/absent", cache])
        #expect(try hub.snapshot(of: "tiny-org/Tiny.FLUX_1") == "\(repo)/snapshots/abc123")
        let pipeline = try FluxPipelineLoader.load("tiny-org/Tiny.FLUX_1", options: FluxPipelineLoadOptions(dtype: .f32), cache: hub)
        #expect(pipeline.tokenizers.clipLength == 77)

        let error = try #require(throws: FluxPipelineError.self) { try hub.snapshot(of: "tiny-org/absent") }
        #expect(error == .notInCache(repoID: "tiny-org/absent", searched: [
            "\(cache)/absent/models--tiny-org--absent/snapshots", "\(cache)/models--tiny-org--absent/snapshots"]))
        #expect(error.description.contains("huggingface-cli download tiny-org/absent"))
    }

    @Test func aFolderOfAnotherPipelineIsNamed() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        let index = "\(fixture.folder)/model_index.json"
        try Data(#"{"_class_name": "StableDiffusion3Pipeline"}"#.utf8).write(to: URL(fileURLWithPath: index))
        let error = try #require(throws: NunchakuError.self) { try FluxPipelineFolder(root: fixture.folder) }
        #expect(error == .unsupported(context: index, reason: "names a StableDiffusion3Pipeline, not a FLUX pipeline (FluxPipeline)"))
    }

    @Test func onlyOrgSlashNameIsARepoID() {
        #expect(HuggingFaceCache.isRepoID("black-forest-labs/FLUX.1-schnell"))
        #expect(!HuggingFaceCache.isRepoID("/models/flux"))
        #expect(!HuggingFaceCache.isRepoID("a/b/c"))
        #expect(!HuggingFaceCache.isRepoID("../flux"))
        #expect(!HuggingFaceCache.isRepoID("flux"))
    }

    @Test func aPathThatIsNeitherFolderNorRepoIDIsNamed() throws {
        let error = try #require(throws: NunchakuError.self) {
            try FluxPipelineLoader.folder(for: "/nonexistent/flux", cache: HuggingFaceCache(folders: []))
        }
        #expect(error == .io(path: "/nonexistent/flux", reason: "no such folder (expected a diffusers FLUX pipeline folder)"))
    }

    @Test func modelsThatDoNotFitTogetherAreRefusedByName() throws {
        let folder = try FluxPipelineFolder(root: TinyFluxPipeline().folder)
        defer { try? FileManager.default.removeItem(atPath: folder.root) }
        let transformer = FluxConfig(numLayers: 1, numSingleLayers: 1, attentionHeadDim: 16, numAttentionHeads: 2,
                                     jointAttentionDim: 32, pooledProjectionDim: 32, guidanceEmbeds: true, axesDimsRope: [4, 6, 6])
        var vae = VAEConfig.flux
        vae.latentChannels = 4
        let error = try #require(throws: NunchakuError.self) {
            try FluxPipelineLoader.checkCompatibility(transformer: transformer, transformerSource: "t", clipWidth: 48,
                                                      t5Width: 32, vae: vae, folder: folder)
        }
        #expect(error.description.contains("text_encoder hidden_size = 48 but the transformer needs pooled_projection_dim = 32"))
        #expect(error.description.contains("vae latent_channels = 4"))
        #expect(!error.description.contains("d_model"))
        var fill = transformer
        fill.inChannels = 384
        fill.outChannels = 64
        #expect(throws: NunchakuError.self) {
            try FluxPipelineLoader.checkCompatibility(transformer: fill, transformerSource: "t", clipWidth: 32,
                                                      t5Width: 32, vae: .flux, folder: folder)
        }
    }
}
