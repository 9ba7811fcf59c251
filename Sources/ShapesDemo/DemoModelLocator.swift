import Foundation
import NunchakuCore

/// Finds the built-in flux-shapes demo model (a diffusers pipeline folder shipped in the repository at
/// `models/flux-shapes`). Looked for, in order: `$NUNCHAKU_DEMO_MODEL`; `models/flux-shapes` in the folder of the
/// running executable or any folder above it (a `swift build` product lives in `.build/<config>/` of the
/// repository); the same above this source file (the checkout it was built from); `./models/flux-shapes`.
public enum DemoModelLocator {
    /// The environment variable that overrides the search.
    public static let environmentVariable = "NUNCHAKU_DEMO_MODEL"
    /// The folder's path inside the repository.
    public static let relativePath = "models/flux-shapes"
    /// The SVDQuant INT4 transformer inside the folder (made by `nunchaku quantize`).
    public static let int4TransformerFile = "svdq-int4_r32-flux-shapes.safetensors"
    /// The held-out prompts inside the folder (excluded from training).
    public static let heldOutPromptsFile = "heldout_prompts.json"
    /// The calibration inputs inside the folder (forward arguments of the transformer).
    public static let calibrationFolder = "calibration"
    /// The size the model was trained at.
    public static let imageSize = 128

    /// The demo folder's path.
    /// - Throws: `NunchakuError.io` listing every place looked at, when none holds a `model_index.json`; a set
    ///   `$NUNCHAKU_DEMO_MODEL` that does not point at one is an error of its own (no fallback).
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment,
                              executable: String? = Bundle.main.executablePath,
                              sourceFile: String = #filePath,
                              workingDirectory: String = FileManager.default.currentDirectoryPath) throws -> String {
        if let configured = environment[environmentVariable], !configured.isEmpty {
            guard isModel(configured) else {
                throw NunchakuError.io(path: configured, reason: "\(environmentVariable) is set, but \(configured) holds no model_index.json (a flux-shapes pipeline folder)")
            }
            return configured
        }
        let candidates = candidates(executable: executable, sourceFile: sourceFile, workingDirectory: workingDirectory)
        if let found = candidates.first(where: isModel) { return found }
        throw NunchakuError.io(
            path: relativePath,
            reason: "the built-in demo model was not found; looked in: \(candidates.joined(separator: ", ")). "
                + "Set \(environmentVariable) to the flux-shapes folder, run from the repository root, or pass --model")
    }

    /// Every folder `locate` tries after the environment variable, in order, without duplicates.
    public static func candidates(executable: String?, sourceFile: String, workingDirectory: String) -> [String] {
        var result: [String] = []
        func addAncestors(of path: String) {
            var folder = URL(fileURLWithPath: path).resolvingSymlinksInPath().deletingLastPathComponent()
            while true {
                result.append(folder.appendingPathComponent(relativePath).path)
                let parent = folder.deletingLastPathComponent()
                if parent.path == folder.path { break }
                folder = parent
            }
        }
        if let executable { addAncestors(of: executable) }
        addAncestors(of: sourceFile)
        result.append(URL(fileURLWithPath: workingDirectory).appendingPathComponent(relativePath).path)
        var seen = Set<String>()
        return result.filter { seen.insert($0).inserted }
    }

    private static func isModel(_ folder: String) -> Bool {
        FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("model_index.json"))
    }
}
