import Foundation
import Testing
import CPUBackend
import NunchakuCore
import SafeTensors
@testable import Models

/// Loading a transformer from files on disk: a diffusers folder, a pipeline folder, one file with the config inside.
struct FluxModelFilesTests {
    private func temporaryFolder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flux-files-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    private func writeWeights(_ weights: [String: Tensor], to path: String, metadata: [String: String]? = nil) throws {
        var writer = SafeTensorsWriter(metadata: metadata)
        for name in weights.keys.sorted() { try writer.add(name, weights[name]!) }
        try writer.write(to: path)
    }

    @Test func diffusersAndPipelineFoldersAndSingleFilesLoad() throws {
        let fixture = try FluxFixture(variant: "schnell")
        let configText = try #require(fixture.file.metadata["config"])
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        // A pipeline folder with transformer/{config.json, diffusion_pytorch_model.safetensors}.
        let transformer = root + "/transformer"
        try FileManager.default.createDirectory(atPath: transformer, withIntermediateDirectories: true)
        try Data(configText.utf8).write(to: URL(fileURLWithPath: transformer + "/config.json"))
        try writeWeights(fixture.weights, to: transformer + "/diffusion_pytorch_model.safetensors")
        // One file carrying the config in its metadata, as Nunchaku's merged files do.
        let single = root + "/merged.safetensors"
        try writeWeights(fixture.weights, to: single, metadata: ["config": configText])

        let expected = try fixture.file("sample")
        for path in [root, transformer, single] {
            let files = try FluxModelFiles(path: path)
            #expect(files.config == fixture.config, "\(path)")
            #expect(FluxCheckpointLayout.detect(in: files.weights) == .diffusers)
            let model = try FluxTransformer(files: files, computeDType: .f32)
            #expect(try Comparison.relativeError(fixture.run(model), expected) <= 1e-5, "\(path)")
        }
    }

    @Test func aFileWithoutConfigIsRejected() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeWeights(["x_embedder.weight": Tensor([1], shape: [1, 1])], to: root + "/weights.safetensors")
        #expect(throws: NunchakuError.self) { try FluxModelFiles(path: root + "/weights.safetensors") }
        #expect(throws: NunchakuError.self) { try FluxModelFiles(path: root + "/absent") }
    }
}
