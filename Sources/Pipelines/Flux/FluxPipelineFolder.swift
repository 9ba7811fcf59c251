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
        let indexPath = (root as NSString).appendingPathComponent("model_index.json")
        if let className = try readJSONFile(indexPath).objectMembers?.first(where: { $0.key == "_class_name" })?.value.stringValue,
           !className.hasPrefix("Flux") {
            throw NunchakuError.unsupported(context: indexPath, reason: "names a \(className), not a FLUX pipeline (FluxPipeline)")
        }
    }

    /// The folder of one component (`tokenizer`, `text_encoder_2`, `vae`, …).
    public func path(_ component: String) -> String {
        (root as NSString).appendingPathComponent(component)
    }

    /// `scheduler/scheduler_config.json`.
    public var schedulerConfigPath: String { (path("scheduler") as NSString).appendingPathComponent("scheduler_config.json") }

    /// One thing the pipeline needs: a file, a folder holding weights (`*.safetensors` or a shard index), or a
    /// CLIP tokenizer (`tokenizer.json`, or the `vocab.json` + `merges.txt` FLUX repos ship).
    struct RequiredPart {
        enum Kind { case file, weights, clipTokenizer }
        let relativePath: String
        let kind: Kind

        func isPresent(in root: String) -> Bool {
            let full = (root as NSString).appendingPathComponent(relativePath)
            let manager = FileManager.default
            switch kind {
            case .file:
                return manager.isReadableFile(atPath: full)
            case .weights:
                let entries = (try? manager.contentsOfDirectory(atPath: full)) ?? []
                return entries.contains { $0.hasSuffix(".safetensors") || $0.hasSuffix(".safetensors.index.json") }
            case .clipTokenizer:
                return manager.isReadableFile(atPath: (full as NSString).appendingPathComponent("tokenizer.json"))
                    || CLIPVocabularyFiles.arePresent(in: full)
            }
        }

        func description(in root: String) -> String {
            let full = (root as NSString).appendingPathComponent(relativePath)
            switch kind {
            case .file: return "\(relativePath) (looked for \(full))"
            case .weights: return "\(relativePath)*.safetensors (weights; looked in \(full))"
            case .clipTokenizer:
                return "\(relativePath)/tokenizer.json or \(relativePath)/vocab.json + merges.txt (looked in \(full))"
            }
        }
    }

    static func requiredParts(includingTransformer: Bool) -> [RequiredPart] {
        var parts = [RequiredPart(relativePath: "model_index.json", kind: .file),
                     RequiredPart(relativePath: "scheduler/scheduler_config.json", kind: .file),
                     RequiredPart(relativePath: "tokenizer", kind: .clipTokenizer),
                     RequiredPart(relativePath: "tokenizer/tokenizer_config.json", kind: .file),
                     RequiredPart(relativePath: "tokenizer_2/tokenizer.json", kind: .file),
                     RequiredPart(relativePath: "tokenizer_2/tokenizer_config.json", kind: .file)]
        for model in ["text_encoder", "text_encoder_2"] + (includingTransformer ? ["transformer"] : []) + ["vae"] {
            parts.append(RequiredPart(relativePath: "\(model)/config.json", kind: .file))
            parts.append(RequiredPart(relativePath: "\(model)/", kind: .weights))
        }
        return parts
    }
}
