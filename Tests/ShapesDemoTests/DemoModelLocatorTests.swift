import Foundation
import ShapesDemo
import Testing

struct DemoModelLocatorTests {
    private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func findsTheShippedModelFromTheSourceTree() throws {
        let found = try DemoModelLocator.locate(environment: [:], executable: nil,
                                                sourceFile: repository.appendingPathComponent("Sources/ShapesDemo/X.swift").path,
                                                workingDirectory: "/")
        #expect(found == repository.appendingPathComponent("models/flux-shapes").path)
        for part in ["model_index.json", DemoModelLocator.int4TransformerFile, DemoModelLocator.heldOutPromptsFile,
                     "transformer/config.json", "vae/config.json", "tokenizer/tokenizer.json", "tokenizer_2/tokenizer.json"] {
            #expect(FileManager.default.fileExists(atPath: "\(found)/\(part)"), "\(part)")
        }
    }

    @Test func findsItAboveTheExecutable() throws {
        let executable = repository.appendingPathComponent(".build/release/nunchaku").path
        let found = try DemoModelLocator.locate(environment: [:], executable: executable, sourceFile: "/nowhere/x.swift",
                                                workingDirectory: "/")
        #expect(found == repository.appendingPathComponent("models/flux-shapes").path)
    }

    @Test func environmentWinsAndMustBeRight() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("demo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        #expect(throws: (any Error).self) {
            try DemoModelLocator.locate(environment: [DemoModelLocator.environmentVariable: folder.path], executable: nil,
                                        sourceFile: #filePath, workingDirectory: "/")
        }
        try Data("{}".utf8).write(to: folder.appendingPathComponent("model_index.json"))
        let found = try DemoModelLocator.locate(environment: [DemoModelLocator.environmentVariable: folder.path],
                                                executable: nil, sourceFile: #filePath, workingDirectory: "/")
        #expect(found == folder.path)
    }

    @Test func missingEverywhereNamesThePlaces() throws {
        do {
            _ = try DemoModelLocator.locate(environment: [:], executable: "/opt/tool/bin/nunchaku", sourceFile: "/src/a/b.swift",
                                            workingDirectory: "/work/dir")
            Issue.record("expected an error")
        } catch {
            let text = String(describing: error)
            for place in ["/opt/tool/bin/models/flux-shapes", "/src/a/models/flux-shapes", "/work/dir/models/flux-shapes",
                          DemoModelLocator.environmentVariable] {
                #expect(text.contains(place), "\(place) in \(text)")
            }
        }
    }

    @Test func heldOutPromptsParseAndWereNotTrainedOn() throws {
        let model = repository.appendingPathComponent("models/flux-shapes").path
        let prompts = try ShapesEvaluation.heldOutPrompts(model: model)
        #expect(prompts.count == 32)
        #expect(Set(prompts).count == prompts.count)
        for prompt in prompts { _ = try ShapesScene(prompt: prompt) }
    }
}
