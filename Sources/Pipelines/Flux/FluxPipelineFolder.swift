import Foundation
import NunchakuCore

/// A diffusers FLUX pipeline on disk (`FluxPipeline.save_pretrained` layout, or a Hugging Face cache snapshot of a
/// FLUX repo): `model_index.json`, `scheduler/`, `tokenizer/`, `tokenizer_2/`, `text_encoder/`, `text_encoder_2/`,
/// `transformer/` and `vae/`.
public struct FluxPipelineFolder: Sendable, Equatable {
    /// The pipeline's root folder.
    public let root: String
    /// Whether `transformer/` is taken from this folder (false when another transformer replaces it).
    public let includesTransformer: Bool

    /// Checks that every part the pipeline reads is present under `root`.
    /// - Parameter includingTransformer: false when the transformer comes from elsewhere (an SVDQuant file), so
    ///   `transformer/` may be absent.
    /// - Throws: `FluxPipelineError.missingParts` listing every missing file or folder and where it was looked for;
    ///   `NunchakuError.io` when `root` is not a folder.
    public init(root: String, includingTransformer: Bool = true) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw NunchakuError.io(path: root, reason: "no such folder (expected a diffusers FLUX pipeline folder)")
        }
        self.root = root
        self.includesTransformer = includingTransformer
        let missing = Self.requiredParts(includingTransformer: includingTransformer).filter { !$0.isPresent(in: root) }
        guard missing.isEmpty else {
            throw FluxPipelineError.missingParts(folder: root, missing: missing.map { $0.description(in: root) })
        }
    }

    /// The folder of one component (`tokenizer`, `text_encoder_2`, `vae`, …).
    public func path(_ component: String) -> String {
        (root as NSString).appendingPathComponent(component)
    }

    /// `scheduler/scheduler_config.json`.
    public var schedulerConfigPath: String { (path("scheduler") as NSString).appendingPathComponent("scheduler_config.json") }

    /// One thing the pipeline needs: a file, or a folder holding weights (`*.safetensors` or a shard index).
    struct RequiredPart {
        let relativePath: String
        let holdsWeights: Bool

        func isPresent(in root: String) -> Bool {
            let full = (root as NSString).appendingPathComponent(relativePath)
            guard holdsWeights else { return FileManager.default.isReadableFile(atPath: full) }
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: full)) ?? []
            return entries.contains { $0.hasSuffix(".safetensors") || $0.hasSuffix(".safetensors.index.json") }
        }

        func description(in root: String) -> String {
            let full = (root as NSString).appendingPathComponent(relativePath)
            return holdsWeights ? "\(relativePath)*.safetensors (weights; looked in \(full))" : "\(relativePath) (looked for \(full))"
        }
    }

    static func requiredParts(includingTransformer: Bool) -> [RequiredPart] {
        var parts = [RequiredPart(relativePath: "model_index.json", holdsWeights: false),
                     RequiredPart(relativePath: "scheduler/scheduler_config.json", holdsWeights: false)]
        for tokenizer in ["tokenizer", "tokenizer_2"] {
            parts.append(RequiredPart(relativePath: "\(tokenizer)/tokenizer.json", holdsWeights: false))
            parts.append(RequiredPart(relativePath: "\(tokenizer)/tokenizer_config.json", holdsWeights: false))
        }
        for model in ["text_encoder", "text_encoder_2"] + (includingTransformer ? ["transformer"] : []) + ["vae"] {
            parts.append(RequiredPart(relativePath: "\(model)/config.json", holdsWeights: false))
            parts.append(RequiredPart(relativePath: "\(model)/", holdsWeights: true))
        }
        return parts
    }
}
