import NunchakuCore
import SafeTensors

/// A Hugging Face `tokenizer.json` tokenizer, built from the file's components and producing the ids the Rust
/// `tokenizers` library produces (checked on CLIP-, T5-, Qwen- and Gemma-style files, see docs/pipeline.md).
///
/// Encoding runs the library's steps in order: cut out added tokens (on raw text for `normalized: false` ones),
/// normalize the rest, cut out the normalized added tokens, pre-tokenize into words, run the model on each word,
/// then truncate, add special tokens (post-processor) and pad. Only single sequences are supported (no pairs).
/// A component type this engine lacks fails at load with an error naming it.
public struct Tokenizer: Sendable {
    private let normalizer: (any TextNormalizer)?
    private let preTokenizer: (any PreTokenizer)?
    private let model: any TokenModel
    private let postProcessor: (any PostProcessor)?
    private let decoder: (any TokenDecoder)?
    private let addedVocabulary: AddedVocabulary

    /// Builds the tokenizer described by a parsed tokenizer.json; `source` names the file in errors.
    /// - Throws: `NunchakuError.unsupported` for a component type this engine does not implement,
    ///   `NunchakuError.invalidArgument` for malformed content.
    public init(json: JSONValue, source: String = "tokenizer.json") throws {
        let root = try TokenizerJSONObject(json, location: source)
        try self.init(
            normalizer: try root.optionalObject("normalizer").map(makeNormalizer),
            preTokenizer: try root.optionalObject("pre_tokenizer").map(makePreTokenizer),
            model: try makeTokenModel(try root.object("model")),
            postProcessor: try root.optionalObject("post_processor").map(makePostProcessor),
            decoder: try root.optionalObject("decoder").map(makeDecoder),
            addedTokens: try root["added_tokens"] == nil ? [] : root.objects("added_tokens"))
    }

    /// A tokenizer from its parts, with `addedTokens` (tokenizer.json `added_tokens` objects).
    init(normalizer: (any TextNormalizer)?, preTokenizer: (any PreTokenizer)?, model: any TokenModel,
         postProcessor: (any PostProcessor)?, decoder: (any TokenDecoder)?, addedTokens: [TokenizerJSONObject]) throws {
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.postProcessor = postProcessor
        self.decoder = decoder
        addedVocabulary = try AddedVocabulary(addedTokens, model: model, normalizer: normalizer)
    }

    /// Reads and builds the tokenizer.json at `path`.
    public init(contentsOfFile path: String) throws {
        try self.init(json: try readJSONFile(path), source: path)
    }

    /// The ids for `text`, with the post-processor's special tokens when `addSpecialTokens`; no truncation or
    /// padding (`tokenizers`' `Tokenizer.encode(text).ids`).
    public func encode(_ text: String, addSpecialTokens: Bool = true) throws -> [Int] {
        let ids = try tokenize(text)
        return addSpecialTokens ? postProcessor?.process(ids) ?? ids : ids
    }

    /// The ids for `text` truncated and padded to exactly `length`, as transformers returns them for
    /// `tokenizer(text, padding="max_length", max_length=length, truncation=True)`: the text's tokens are cut
    /// (from the end) to leave room for the special tokens, which are then added, and `padID` fills the rest on
    /// `paddingSide`.
    /// - Throws: `NunchakuError.invalidArgument` when `length` cannot even hold the special tokens.
    public func encode(_ text: String, length: Int, padID: Int, paddingSide: PaddingSide = .right,
                       addSpecialTokens: Bool = true) throws -> PaddedTokens {
        let special = addSpecialTokens ? postProcessor?.addedTokenCount ?? 0 : 0
        guard length >= special else {
            throw NunchakuError.invalidArgument(
                context: "tokenizer encode", reason: "length \(length) is shorter than the \(special) special tokens")
        }
        let words = try tokenize(text).prefix(length - special)
        let ids = addSpecialTokens ? postProcessor?.process(Array(words)) ?? Array(words) : Array(words)
        let padding = [Int](repeating: padID, count: length - ids.count)
        let mask = [Int](repeating: 1, count: ids.count)
        let paddingMask = [Int](repeating: 0, count: padding.count)
        switch paddingSide {
        case .right: return PaddedTokens(ids: ids + padding, attentionMask: mask + paddingMask)
        case .left: return PaddedTokens(ids: padding + ids, attentionMask: paddingMask + mask)
        }
    }

    /// The text for `ids`, through the file's decoder (tokens joined by spaces when it has none). Ids with no
    /// token are skipped, as are special tokens when `skipSpecialTokens`.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        let tokens = ids.compactMap { id -> String? in
            if let added = addedVocabulary.token(forID: id) {
                return skipSpecialTokens && added.special ? nil : added.text
            }
            return model.token(forID: id)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }

    /// The id of token `token` (an added token or a vocabulary entry, matched exactly), or nil.
    public func id(forToken token: String) -> Int? {
        addedVocabulary.id(forContent: token.scalarArray) ?? model.id(forToken: utf8Key(token))
    }

    /// The token with id `id` (an added token or a vocabulary entry), or nil.
    public func token(forID id: Int) -> String? {
        addedVocabulary.token(forID: id)?.text ?? model.token(forID: id)
    }

    /// The model's ids for the words of `text`, before post-processing.
    private func tokenize(_ text: String) throws -> [Int] {
        var ids: [Int] = []
        for segment in try addedVocabulary.extract(from: text.scalarArray, normalizer: normalizer) {
            switch segment {
            case let .token(id):
                ids.append(id)
            case let .text(piece):
                let words = try preTokenizer?.preTokenize([piece]) ?? [piece]
                for word in words where !word.isEmpty {
                    ids.append(contentsOf: try model.tokenize(word.scalars))
                }
            }
        }
        return ids
    }
}

/// Where padding goes.
public enum PaddingSide: String, Sendable {
    case left, right
}

/// Ids padded to a fixed length, with the mask telling real tokens (1) from padding (0).
public struct PaddedTokens: Sendable, Equatable {
    public var ids: [Int]
    public var attentionMask: [Int]
}

/// Parses the JSON file at `path`, naming the file in errors.
func readJSONFile(_ path: String) throws -> JSONValue {
    let bytes = try FileContents.read(path)
    do {
        return try JSONValue.parse(bytes)
    } catch let error as JSONParseError {
        throw NunchakuError.invalidArgument(context: path, reason: "not valid JSON: \(error)")
    }
}
