import Foundation
import NunchakuCore
import SafeTensors
import Testing
@testable import SVDQuant

/// Python with numpy and safetensors ≥ 0.8 (`TensorSpec`), which runs `scripts/reference/svdquant_pack_reference.py`.
/// `NUNCHAKU_PYTHON` picks the interpreter (default `python3`); under `NUNCHAKU_CI` a missing one fails the tests.
enum ReferencePython {
    static let interpreter = Environment.value("NUNCHAKU_PYTHON") ?? "python3"
    static let isRequired = Environment.value("NUNCHAKU_CI") != nil
    static let isUsable = (try? run(["-c", "import numpy, safetensors; assert hasattr(safetensors, 'TensorSpec')"]).status) == 0

    /// The reference packer script, found from this file's path.
    static let packerScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/reference/svdquant_pack_reference.py").path

    /// Runs the interpreter with `arguments`; returns its exit status and everything it printed.
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let folder = try ScratchFolder()
        let log = folder.file("output.log")
        guard FileManager.default.createFile(atPath: log, contents: nil) else {
            throw NunchakuError.io(path: log, reason: "cannot create the log file")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [interpreter] + arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        try handle.close()
        return (process.terminationStatus, String(decoding: try FileContents.read(log), as: UTF8.self))
    }
}

/// A Nunchaku file written by an independent packer (NumPy reshape/permute ports of Nunchaku's and deepcompressor's
/// packers) converts to exactly the logical tensors it was packed from, and back.
@Suite(.enabled(if: ReferencePython.isUsable || ReferencePython.isRequired))
struct PackReferenceCheckpointTests {
    @Test(arguments: [SVDQuantPrecision.int4, .nvfp4])
    func independentlyPackedNunchakuFileConvertsToItsLogicalTensors(precision: SVDQuantPrecision) throws {
        try #require(ReferencePython.isUsable, "NUNCHAKU_CI is set but \(ReferencePython.interpreter) lacks numpy or safetensors >= 0.8")
        let folder = try ScratchFolder()
        let (nunchaku, logical) = (folder.file("reference-nunchaku.safetensors"), folder.file("reference-canonical.safetensors"))
        let (status, output) = try ReferencePython.run([
            ReferencePython.packerScript, "--flux-checkpoint", nunchaku, logical, "--precision", precision.rawValue, "--seed", "5",
        ])
        try #require(status == 0, "the reference packer failed: \(output)")

        let checkpoint = try SVDQuantCheckpoint(path: nunchaku)
        #expect(checkpoint.container == .nunchakuMerged && checkpoint.precision == precision && checkpoint.model.family == .flux)
        #expect(checkpoint.w4a4LayerNames.count == 12 && checkpoint.awqLayerNames.count == 3)
        let canonical = folder.file("canonical.safetensors")
        try SVDQuantConverter.convert(checkpoint, to: .canonical, output: canonical)
        let expected = try storedTensors(logical)
        #expect(expected.count > 100)
        #expect(try storedTensors(canonical) == expected)

        // And the reverse: the logical tensors (a canonical file) pack to the reference packer's bytes.
        let packed = folder.file("packed.safetensors")
        try SVDQuantConverter.convert(SVDQuantCheckpoint(path: logical), to: .nunchaku, output: packed)
        #expect(try storedTensors(packed) == storedTensors(nunchaku))
        #expect(try storedMetadata(packed)["quantization_config"] == storedMetadata(nunchaku)["quantization_config"])
    }
}
