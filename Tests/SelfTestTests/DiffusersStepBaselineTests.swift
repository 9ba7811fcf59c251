import Foundation
import NunchakuCore
@testable import SelfTest
import Testing

@Suite struct DiffusersStepBaselineTests {
    /// Writes `text` to a fresh file and returns its path.
    static func file(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("diffusers-\(UUID().uuidString).json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The layout `scripts/diffusers_step_bench.py --json` writes (values from the H200 run of session 11).
    static let script = """
    {"device": "NVIDIA H200", "results": [
     {"size": 512, "mode": "eager", "ms": 59.2, "peak_gib": 22.36, "wall_s": 2.1},
     {"size": 512, "mode": "compile", "ms": 42.1, "peak_gib": 22.36, "wall_s": 79.0},
     {"size": 1024, "mode": "eager", "ms": 173.6, "peak_gib": 22.66, "wall_s": 2.4},
     {"size": 1024, "mode": "compile", "ms": 130.4, "peak_gib": 22.56, "wall_s": 124.0}]}
    """

    @Test func readsTheScriptsJSONAndFindsEachSize() throws {
        let baseline = try DiffusersStepBaseline(path: try Self.file(Self.script))
        #expect(baseline.device == "NVIDIA H200")
        #expect(baseline.milliseconds("eager", imageTokens: 4096) == 173.6)
        #expect(baseline.milliseconds("compile", imageTokens: 4096) == 130.4)
        #expect(baseline.milliseconds("compile", imageTokens: 1024) == 42.1)
        #expect(baseline.milliseconds("eager", imageTokens: 2304) == nil)   // 768² was not measured
    }

    @Test func aMissingFileIsAnIOErrorNamingIt() {
        let path = "/nonexistent/diffusers.json"
        #expect { try DiffusersStepBaseline(path: path) } throws: { error in
            guard case let NunchakuError.io(errorPath, _) = error else { return false }
            return errorPath == path
        }
    }

    @Test(arguments: [
        ("{\"device\": \"x\"}", "not the JSON"),
        ("{\"device\": \"x\", \"results\": []}", "no results"),
        ("{\"device\": \"x\", \"results\": [{\"size\": 1000, \"mode\": \"eager\", \"ms\": 5, \"peak_gib\": 1}]}", "results[0]"),
        ("{\"device\": \"x\", \"results\": [{\"size\": 1024, \"mode\": \"max-autotune\", \"ms\": 5, \"peak_gib\": 1}]}", "results[0]"),
        ("{\"device\": \"x\", \"results\": [{\"size\": 1024, \"mode\": \"eager\", \"ms\": -1, \"peak_gib\": 1}]}", "results[0]"),
    ])
    func badContentIsRefusedNamingTheFile(text: String, expected: String) throws {
        let path = try Self.file(text)
        #expect { try DiffusersStepBaseline(path: path) } throws: { error in
            "\(error)".contains(path) && "\(error)".contains(expected)
        }
    }
}
