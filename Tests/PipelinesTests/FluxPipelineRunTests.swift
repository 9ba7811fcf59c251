import Foundation
import Testing
import Models
import NunchakuCore
@testable import Pipelines

/// Settings, defaults, progress reports and cancellation of `FluxPipeline`.
struct FluxPipelineRunTests {
    static let dev = FluxConfig(guidanceEmbeds: true)
    static let schnell = FluxConfig(guidanceEmbeds: false)

    @Test func defaultsFollowTheGuidanceEmbedder() throws {
        let dev = try FluxPipeline.Configuration(prompt: "a cat").resolved(for: Self.dev)
        #expect((dev.steps, dev.guidance, dev.maxSequenceLength) == (28, 3.5, 512))
        let schnell = try FluxPipeline.Configuration(prompt: "a cat").resolved(for: Self.schnell)
        #expect((schnell.steps, schnell.guidance, schnell.maxSequenceLength) == (4, nil, 256))
        let chosen = try FluxPipeline.Configuration(prompt: "a cat", steps: 7, guidance: 2, width: 512, height: 768, seed: 3, batch: 2)
            .resolved(for: Self.dev)
        #expect((chosen.steps, chosen.guidance, chosen.width, chosen.height, chosen.seed, chosen.batch) == (7, 2, 512, 768, 3, 2))
    }

    @Test(arguments: [
        (FluxPipeline.Configuration(prompt: "x", width: 1000), "width"),
        (FluxPipeline.Configuration(prompt: "x", height: 0), "height"),
        (FluxPipeline.Configuration(prompt: "x", steps: 0), "steps"),
        (FluxPipeline.Configuration(prompt: "x", batch: 0), "imagesPerPrompt"),
        (FluxPipeline.Configuration(prompts: []), "prompts"),
        (FluxPipeline.Configuration(prompts: ["x"], maxSequenceLength: 513), "maxSequenceLength"),
        (FluxPipeline.Configuration(prompt: "x", guidance: .nan), "guidance"),
    ])
    func badSettingsAreNamed(configuration: FluxPipeline.Configuration, setting: String) throws {
        let error = try #require(throws: FluxPipelineError.self) { try configuration.resolved(for: Self.dev) }
        guard case let .invalidSetting(named, _) = error else {
            Issue.record("expected invalidSetting, got \(error)")
            return
        }
        #expect(named == setting)
    }

    @Test func guidanceForAModelWithoutGuidanceEmbedderIsRefused() throws {
        let error = try #require(throws: FluxPipelineError.self) {
            try FluxPipeline.Configuration(prompt: "x", guidance: 3.5).resolved(for: Self.schnell)
        }
        #expect(error.description.contains("guidance_embeds = false"))
    }

    @Test func progressCoversEveryStageInOrder() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        var reports: [FluxPipelineProgress] = []
        let pipeline = try FluxPipelineLoader.load(folder: FluxPipelineFolder(root: fixture.folder),
                                                   options: FluxPipelineLoadOptions(dtype: .f32)) { reports.append($0); return .proceed }
        var configuration = fixture.configuration
        configuration.prompts = ["one prompt"]
        configuration.imagesPerPrompt = 1
        let output = try pipeline.generate(configuration) { reports.append($0); return .proceed }
        let summary = reports.map { "\($0.stage.rawValue) \($0.completed)/\($0.total)" }
        #expect(summary == ["loading 0/4", "loading 1/4", "loading 2/4", "loading 3/4", "loading 4/4",
                            "encoding 0/2", "encoding 1/2", "encoding 2/2",
                            "denoising 0/3", "denoising 1/3", "denoising 2/3", "denoising 3/3",
                            "decoding 0/1", "decoding 1/1"])
        #expect(output.images.count == 1)
        #expect(Set(output.stageSeconds.keys) == [.encoding, .denoising, .decoding])
        let text = output.pngText(imageIndex: 0, extra: [.init(keyword: "model", text: "tiny")])
        #expect(text.map(\.keyword) == ["prompt", "seed", "steps", "guidance", "size", "max sequence length", "Software", "model"])
        #expect(text[0].text == "one prompt" && text[1].text == fixture.configuration.seed.description && text[4].text == "48x32")
        let written = try FluxImageFiles.write(output, to: "\(fixture.folder)/image.png")
        #expect(written == ["\(fixture.folder)/image.png"])
        let png = try Data(contentsOf: URL(fileURLWithPath: written[0]))
        #expect(png == Data(try PNGWriter.encode(output.images[0], text: output.pngText(imageIndex: 0))))
    }

    @Test func batchesAreNumberedBesideTheOutputName() {
        #expect(FluxImageFiles.paths(for: "out.png", count: 1) == ["out.png"])
        #expect(FluxImageFiles.paths(for: "dir/cat.png", count: 3) == ["dir/cat-1.png", "dir/cat-2.png", "dir/cat-3.png"])
        #expect(FluxImageFiles.paths(for: "cat", count: 2) == ["cat-1.png", "cat-2.png"])
    }

    @Test func cancellingDuringDenoisingThrowsTypedErrorAfterTheCurrentStep() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        let pipeline = try fixture.load()
        var lastReport: FluxPipelineProgress?
        let error = try #require(throws: FluxPipelineError.self) {
            try pipeline.generate(fixture.configuration) { progress in
                lastReport = progress
                return progress.stage == .denoising && progress.completed == 2 ? .cancel : .proceed
            }
        }
        #expect(error == .cancelled(stage: .denoising, completedSteps: 2))
        #expect(lastReport?.stage == .denoising && lastReport?.completed == 2)
        let atEncoding = try #require(throws: FluxPipelineError.self) {
            try pipeline.generate(fixture.configuration) { $0.stage == .encoding ? .cancel : .proceed }
        }
        #expect(atEncoding == .cancelled(stage: .encoding, completedSteps: 0))
    }

    @Test func imagesPerPromptRepeatsEachPromptsRowsInARow() throws {
        let rows = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let repeated = try FluxPipeline.repeatingSamples(rows, 3)
        #expect(repeated.shape == [6, 3])
        #expect(repeated.floats() == [1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6, 4, 5, 6])
        #expect(try FluxPipeline.repeatingSamples(rows, 1).floats() == rows.floats())
    }
}
