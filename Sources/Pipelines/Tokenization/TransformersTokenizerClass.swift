import Foundation
import NunchakuCore
import SafeTensors

/// The tokenizer classes whose pipeline transformers 5 builds in Python instead of reading it from tokenizer.json.
///
/// For these classes transformers takes only the vocabulary (and merges, and T5's Precompiled charsmap) from the
/// file and puts its own normalizer, pre-tokenizer, post-processor and decoder around them, so a hub file run
/// verbatim can give other ids than diffusers feeds its text encoders (T5 files of older converters, for example,
/// turn a trailing space into an extra `▁` token). `Tokenizer(json:configuration:)` reproduces the rebuild.
public enum TransformersTokenizerClass: String, Sendable, CaseIterable {
    /// CLIP (FLUX `tokenizer`): NFC, whitespace runs → " ", lowercase; the CLIP split regex (with the two special
    /// tokens) and byte-level mapping; BPE with `</w>`; `<|startoftext|> … <|endoftext|>`.
    case clip = "CLIPTokenizer"
    /// T5 (FLUX `tokenizer_2`): the file's Precompiled charsmap only; whitespace split then Metaspace (▁, always);
    /// Unigram with unknown id 2; `… </s>`.
    case t5 = "T5Tokenizer"

    static let clipSplitPattern =
        #"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"#
}

extension Tokenizer {
    /// The tokenizer transformers 5 runs for a tokenizer.json with this tokenizer_config.json: the class's own
    /// pipeline for `TransformersTokenizerClass` classes, the file as written for any other class. Special tokens
    /// are those of the file's `added_tokens`.
    /// - Throws: as `init(json:source:)`, and `NunchakuError.invalidArgument` when the file's model is not the
    ///   kind the class needs or a special token of the configuration is missing from the vocabulary.
    public init(json: JSONValue, configuration: TokenizerConfiguration, source: String = "tokenizer.json") throws {
        guard let tokenizerClass = configuration.tokenizerClass.flatMap(TransformersTokenizerClass.init(rawValue:)) else {
            try self.init(json: json, source: source)
            return
        }
        let root = try TokenizerJSONObject(json, location: source)
        let modelObject = try root.object("model")
        let addedTokens = try root["added_tokens"] == nil ? [] : root.objects("added_tokens")
        switch tokenizerClass {
        case .clip:
            guard modelObject["merges"] != nil else {
                throw NunchakuError.invalidArgument(context: modelObject.location, reason: "CLIPTokenizer needs a BPE model")
            }
            let options = BPEModel.Options(unknownToken: configuration.unknownToken ?? "<|endoftext|>",
                                           endOfWordSuffix: "</w>")
            let model = try BPEModel(vocabulary: try modelObject.object("vocab"), merges: try modelObject.array("merges"),
                                     options: options, location: modelObject.location)
            let normalizer = NormalizerSequence(steps: [
                UnicodeNormalizer(form: .nfc),
                ReplaceNormalizer(pattern: try TextPattern(regex: #"\s+"#, location: "CLIPTokenizer"), content: [" "]),
                LowercaseNormalizer(),
            ])
            let preTokenizer = PreTokenizerSequence(steps: [
                SplitPreTokenizer(pattern: try TextPattern(regex: TransformersTokenizerClass.clipSplitPattern,
                                                           location: "CLIPTokenizer"),
                                  behavior: .removed, invert: true),
                try ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true),
            ])
            let withoutSpecialTokens = try Tokenizer(normalizer: normalizer, preTokenizer: preTokenizer, model: model,
                                                     postProcessor: nil, decoder: ByteLevelDecoder(), addedTokens: addedTokens)
            let begin = try withoutSpecialTokens.requireID(configuration.beginToken ?? "<|startoftext|>", source: source)
            let end = try withoutSpecialTokens.requireID(configuration.endToken ?? "<|endoftext|>", source: source)
            try self.init(normalizer: normalizer, preTokenizer: preTokenizer, model: model,
                          postProcessor: SurroundingPostProcessor(first: begin, last: end), decoder: ByteLevelDecoder(),
                          addedTokens: addedTokens)
        case .t5:
            guard case .array? = modelObject["vocab"] else {
                throw NunchakuError.invalidArgument(context: modelObject.location, reason: "T5Tokenizer needs a Unigram model")
            }
            let model = try UnigramModel(entries: try modelObject.array("vocab"), unknownID: 2, byteFallback: false,
                                         location: modelObject.location)
            let normalizer = try Self.precompiledNormalizer(in: try root.optionalObject("normalizer"))
            let metaspace = MetaspacePreTokenizer(replacement: "▁", prependScheme: .always, split: true)
            let preTokenizer = PreTokenizerSequence(steps: [WhitespaceSplitPreTokenizer(), metaspace])
            let decoder = MetaspaceDecoder(replacement: "▁", prependScheme: .always)
            let withoutSpecialTokens = try Tokenizer(normalizer: normalizer, preTokenizer: preTokenizer, model: model,
                                                     postProcessor: nil, decoder: decoder, addedTokens: addedTokens)
            let end = try withoutSpecialTokens.requireID(configuration.endToken ?? "</s>", source: source)
            try self.init(normalizer: normalizer, preTokenizer: preTokenizer, model: model,
                          postProcessor: TemplatePostProcessor(pieces: [.sequence, .special([end])]), decoder: decoder,
                          addedTokens: addedTokens)
        }
    }

    /// Reads `folder/tokenizer.json` with `folder/tokenizer_config.json` (when present) as transformers 5 does.
    public static func loadTransformersFolder(_ folder: String) throws -> (tokenizer: Tokenizer, configuration: TokenizerConfiguration) {
        let configurationPath = "\(folder)/tokenizer_config.json"
        let configuration = FileManager.default.fileExists(atPath: configurationPath)
            ? try TokenizerConfiguration(contentsOfFile: configurationPath) : TokenizerConfiguration()
        let tokenizerPath = "\(folder)/tokenizer.json"
        let tokenizer = try Tokenizer(json: try readJSONFile(tokenizerPath), configuration: configuration, source: tokenizerPath)
        return (tokenizer, configuration)
    }

    /// The id of `token`, or an error naming it.
    private func requireID(_ token: String, source: String) throws -> Int {
        guard let id = id(forToken: token) else {
            throw NunchakuError.invalidArgument(context: source, reason: "special token \"\(token)\" is not in the vocabulary")
        }
        return id
    }

    /// The file's Precompiled normalizer (alone or inside a Sequence), the only part T5Tokenizer keeps.
    private static func precompiledNormalizer(in object: TokenizerJSONObject?) throws -> (any TextNormalizer)? {
        guard let object else { return nil }
        let candidates = try object.type == "Sequence" ? try object.objects("normalizers") : [object]
        for candidate in candidates where try candidate.type == "Precompiled" {
            return try PrecompiledNormalizer(base64: try candidate.string("precompiled_charsmap"),
                                             location: candidate.location(of: "precompiled_charsmap"))
        }
        return nil
    }
}
