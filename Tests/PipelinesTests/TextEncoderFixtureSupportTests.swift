import Foundation
import NunchakuCore
@testable import Pipelines
import SafeTensors
import Testing

/// A text-encoder reference fixture (scripts/parity/text_encoders_reference.py): the model's config.json text, its
/// weights, and the inputs and outputs of transformers.
struct TextEncoderFixture {
    /// Tensors that are inputs or reference outputs, not weights.
    static let referenceNames: Set<String> = [
        "input_ids", "last_hidden_state", "pooler_output", "pooler_output_legacy", "buckets_relative",
    ]
    let config: String
    let tensors: [String: Tensor]

    /// Reads `Fixtures/<name>` beside this file.
    init(named name: String) throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        let file = try SafeTensorsFile(path: folder.appendingPathComponent(name).path)
        tensors = try Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, try file.tensor($0)) })
        config = try #require(file.metadata?["config"])
    }

    /// The weights only.
    var weights: [String: Tensor] { tensors.filter { !Self.referenceNames.contains($0.key) } }

    func tensor(_ name: String) throws -> Tensor { try #require(tensors[name]) }

    /// The rows of the `[B, S]` integer tensor `name`.
    func tokenRows(_ name: String = "input_ids") throws -> [[Int]] {
        let ids = try tensor(name)
        let values = ids.doubles().map { Int($0) }
        return (0..<ids.shape[0]).map { Array(values[($0 * ids.shape[1])..<(($0 + 1) * ids.shape[1])]) }
    }

    /// Writes a transformers-style folder (config.json + model.safetensors holding `weights`) in a fresh temporary
    /// folder and returns its path.
    func writeFolder(weights: [String: Tensor]? = nil, config configText: String? = nil) throws -> String {
        let folder = try makeTemporaryFolder()
        try Data((configText ?? config).utf8).write(to: URL(fileURLWithPath: folder + "/config.json"))
        var writer = SafeTensorsWriter()
        for (name, tensor) in (weights ?? self.weights).sorted(by: { $0.key < $1.key }) { try writer.add(name, tensor) }
        try writer.write(to: folder + "/model.safetensors")
        return folder
    }
}

/// A new empty folder under the temporary directory.
func makeTemporaryFolder() throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("textenc-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

/// `max |actual − expected| / max |expected|`, after checking the shapes agree.
func relativeError(_ actual: Tensor, _ expected: Tensor) throws -> Double {
    try #require(actual.shape == expected.shape, "shape \(actual.shape) vs reference \(expected.shape)")
    let a = actual.doubles(), b = expected.doubles()
    let difference = zip(a, b).map { abs($0 - $1) }.max() ?? 0
    let scale = b.map(abs).max() ?? 0
    return scale > 0 ? difference / scale : difference
}

@Suite struct TextEncoderFixtureSupportTests {
    @Test func relativeErrorMeasuresTheLargestDeviation() throws {
        let expected = Tensor([1, -4, 2], shape: [3])
        #expect(try relativeError(Tensor([1, -4, 2], shape: [3]), expected) == 0)
        #expect(try relativeError(Tensor([1, -3, 2], shape: [3]), expected) == 0.25)
    }
}
