import Foundation
import Testing
import Models
import NunchakuCore
@testable import Pipelines

/// A transformer that remembers every call's timestep and text states, then runs the real one.
final class ObservingTransformer: FluxDenoising, @unchecked Sendable {
    let base: any FluxDenoising
    private(set) var timesteps: [[Float]] = []
    private(set) var textStates: [[Float]] = []

    init(_ base: any FluxDenoising) { self.base = base }

    var config: FluxConfig { base.config }

    func forward(inputs: any TensorProvider) throws -> Tensor {
        timesteps.append(try inputs.tensor(named: "timestep").floats())
        textStates.append(try inputs.tensor(named: "encoder_hidden_states").floats())
        return try base.forward(inputs: inputs)
    }
}

/// Prompt-driven calibration: the prompt file, and the denoising loops a recording transformer sees.
struct FluxPipelineCalibrationTests {
    @Test func promptFilesKeepOnePromptPerNonBlankLine() throws {
        let folder = try makeTemporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = "\(folder)/prompts.txt"
        try Data("a cat\n\n   \r\n  café, 2024!  \r\nlast".utf8).write(to: URL(fileURLWithPath: path))
        #expect(try FluxPromptCalibration.prompts(contentsOfFile: path) == ["a cat", "café, 2024!", "last"])
        try Data("\n \n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: NunchakuError.self) { try FluxPromptCalibration.prompts(contentsOfFile: path) }
        #expect(throws: NunchakuError.self) { try FluxPromptCalibration.prompts(contentsOfFile: "\(folder)/absent.txt") }
    }

    @Test func everyStepOfEveryPromptReachesTheTransformer() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        let plain = try fixture.load()
        let observer = ObservingTransformer(plain.models.transformer)
        let pipeline = try FluxPipelineLoader.load(folder: FluxPipelineFolder(root: fixture.folder, includingTransformer: false),
                                                   options: FluxPipelineLoadOptions(dtype: .f32), transformer: observer)
        let template = FluxPipeline.Configuration(prompts: [], steps: 2, width: 32, height: 32, maxSequenceLength: 8)
        var reports: [(Int, FluxPipelineProgress.Stage)] = []
        try FluxPromptCalibration.run(pipeline, prompts: ["a cat", "a dog", "a cat"], template: template) { index, progress in
            reports.append((index, progress.stage))
            return .proceed
        }
        #expect(observer.timesteps.count == 6)
        #expect(observer.timesteps[0] == observer.timesteps[2] && observer.timesteps[0] != observer.timesteps[1])
        #expect(observer.textStates[0] == observer.textStates[4] && observer.textStates[0] != observer.textStates[2])
        #expect(Set(reports.map(\.0)) == [0, 1, 2] && !reports.contains { $0.1 == .decoding })
    }
}
