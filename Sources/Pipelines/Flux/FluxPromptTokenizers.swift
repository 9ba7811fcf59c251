import Foundation
import NunchakuCore

/// The two tokenizers of a FLUX pipeline, with the padding FluxPipeline uses: CLIP (`tokenizer/`) to
/// `model_max_length` (77), T5 (`tokenizer_2/`) to `max_sequence_length`; both `padding="max_length",
/// truncation=True`, padded on the right.
public struct FluxPromptTokenizers: Sendable {
    public let clip: Tokenizer
    public let clipPadID: Int
    /// CLIP's padded length (`tokenizer.model_max_length`).
    public let clipLength: Int
    public let t5: Tokenizer
    public let t5PadID: Int

    /// Builds them from already-loaded tokenizers; the pad ids come from each configuration's `pad_token`.
    /// - Throws: `NunchakuError.invalidArgument` naming the source when a configuration has no pad token or the
    ///   vocabulary lacks it.
    public init(clip: Tokenizer, clipConfiguration: TokenizerConfiguration, clipSource: String,
                t5: Tokenizer, t5Configuration: TokenizerConfiguration, t5Source: String) throws {
        self.clip = clip
        self.t5 = t5
        clipPadID = try Self.padID(clip, clipConfiguration, clipSource)
        t5PadID = try Self.padID(t5, t5Configuration, t5Source)
        clipLength = clipConfiguration.modelMaxLength ?? 77
    }

    /// Loads `tokenizer/` and `tokenizer_2/` of a pipeline folder as transformers 5 does; CLIP from its
    /// tokenizer.json, or from `vocab.json` + `merges.txt` when there is none (as in the FLUX.1 repos).
    public init(folder: FluxPipelineFolder) throws {
        let clipFolder = folder.path("tokenizer")
        let hasJSON = FileManager.default.fileExists(atPath: (clipFolder as NSString).appendingPathComponent("tokenizer.json"))
        let (clip, clipConfiguration) = hasJSON || !CLIPVocabularyFiles.arePresent(in: clipFolder)
            ? try Tokenizer.loadTransformersFolder(clipFolder) : try CLIPVocabularyFiles.load(folder: clipFolder)
        let (t5, t5Configuration) = try Tokenizer.loadTransformersFolder(folder.path("tokenizer_2"))
        try self.init(clip: clip, clipConfiguration: clipConfiguration, clipSource: folder.path("tokenizer"),
                      t5: t5, t5Configuration: t5Configuration, t5Source: folder.path("tokenizer_2"))
    }

    /// CLIP ids, one row of `clipLength` per prompt.
    public func clipIDs(_ prompts: [String]) throws -> [[Int]] {
        try prompts.map { try clip.encode($0, length: clipLength, padID: clipPadID).ids }
    }

    /// T5 ids, one row of `length` per prompt.
    public func t5IDs(_ prompts: [String], length: Int) throws -> [[Int]] {
        try prompts.map { try t5.encode($0, length: length, padID: t5PadID).ids }
    }

    private static func padID(_ tokenizer: Tokenizer, _ configuration: TokenizerConfiguration, _ source: String) throws -> Int {
        guard let token = configuration.padToken else {
            throw NunchakuError.invalidArgument(context: "\(source)/tokenizer_config.json", reason: "no pad_token; FLUX pads prompts to a fixed length")
        }
        guard let id = tokenizer.id(forToken: token) else {
            throw NunchakuError.invalidArgument(context: "\(source)/tokenizer.json", reason: "pad token \"\(token)\" is not in the vocabulary")
        }
        return id
    }
}
