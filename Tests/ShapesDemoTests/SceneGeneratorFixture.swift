import Foundation
import NunchakuCore
import Pipelines
import SafeTensors

/// Scenes drawn by `scripts/demo/scenes.py` (the generator the demo model was trained on), read back as images and
/// captions. Needs a Python with numpy, Pillow and safetensors (`NUNCHAKU_PYTHON`, default `python3`); under
/// `NUNCHAKU_CI` a missing one fails the tests instead of skipping them.
enum SceneGeneratorFixture {
    static let isRequired = Environment.value("NUNCHAKU_CI") != nil
    static let interpreter = Environment.value("NUNCHAKU_PYTHON") ?? "python3"
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let script = repositoryRoot.appendingPathComponent("scripts/demo/scenes.py").path

    /// Whether the interpreter imports what the generator needs.
    static let isUsable: Bool = (try? run(["-c", "import numpy, PIL, safetensors"]).status) == 0

    /// `count` scenes from `seed`: (caption, image) pairs.
    static func scenes(count: Int, seed: Int) throws -> [(caption: String, image: RGBImage)] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("shapes-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try run([script, "--dump", path, "--count", "\(count)", "--seed", "\(seed)"])
        guard result.status == 0 else {
            throw NunchakuError.io(path: script, reason: "exited with \(result.status): \(result.output)")
        }
        let file = try SafeTensorsFile(path: path)
        let tensor = try file.raw("images")
        let captions = try JSONDecoder().decode([String].self, from: Data((file.metadata?["captions"] ?? "[]").utf8))
        let bytes = tensor.bytes
        let (height, width) = (tensor.shape[1], tensor.shape[2])
        let size = height * width * 3
        return try captions.enumerated().map { index, caption in
            (caption, try RGBImage(width: width, height: height, pixels: Array(bytes[(index * size)..<((index + 1) * size)])))
        }
    }

    private static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [interpreter] + arguments
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
