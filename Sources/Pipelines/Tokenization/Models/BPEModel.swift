import NunchakuCore
import SafeTensors

/// Byte-pair encoding as `tokenizers` runs it (CLIP, Qwen, Gemma).
///
/// A word starts as one symbol per scalar (the first without, the others with `continuing_subword_prefix`; the
/// last with `end_of_word_suffix`). A scalar missing from the vocabulary becomes its `<0xAB>` byte tokens when
/// `byte_fallback` is set, else the unknown token (consecutive ones fused when `fuse_unk`), else it is dropped.
/// Then the adjacent pair with the lowest merge rank is merged, leftmost first, until no pair has a merge.
struct BPEModel: TokenModel {
    private let vocabulary: [[UInt8]: Int]
    private let tokens: [Int: String]
    private let merges: BPEMerges
    private let unknownToken: String?
    private let continuingSubwordPrefix: [UInt8]
    private let endOfWordSuffix: [UInt8]
    private let fuseUnknown: Bool
    private let byteFallback: Bool
    private let ignoreMerges: Bool
    private let location: String

    /// The settings besides vocabulary and merges.
    struct Options {
        var unknownToken: String?
        var continuingSubwordPrefix = ""
        var endOfWordSuffix = ""
        var fuseUnknown = false
        var byteFallback = false
        var ignoreMerges = false
    }

    /// Reads a tokenizer.json `BPE` model.
    init(_ object: TokenizerJSONObject) throws {
        if let dropout = object["dropout"]?.numberValue, dropout > 0 {
            throw NunchakuError.unsupported(context: object.location(of: "dropout"),
                                            reason: "BPE dropout \(dropout) makes tokenization random")
        }
        let options = Options(
            unknownToken: try object.optionalString("unk_token"),
            continuingSubwordPrefix: try object.optionalString("continuing_subword_prefix") ?? "",
            endOfWordSuffix: try object.optionalString("end_of_word_suffix") ?? "",
            fuseUnknown: try object.bool("fuse_unk", default: false),
            byteFallback: try object.bool("byte_fallback", default: false),
            ignoreMerges: try object.bool("ignore_merges", default: false))
        try self.init(vocabulary: try object.object("vocab"), merges: try object.array("merges"), options: options,
                      location: object.location)
    }

    /// A model from a `vocab` object and `merges` array with the given settings (`location` names the model).
    init(vocabulary vocabularyObject: TokenizerJSONObject, merges: [JSONValue], options: Options, location: String) throws {
        var vocabulary: [[UInt8]: Int] = [:]
        var tokens: [Int: String] = [:]
        for member in vocabularyObject.members {
            guard let id = member.value.intValue, id >= 0 else {
                throw vocabularyObject.invalid(member.key, "expected a non-negative integer id")
            }
            vocabulary[utf8Key(member.key)] = id
            tokens[id] = member.key
        }
        self.vocabulary = vocabulary
        self.tokens = tokens
        continuingSubwordPrefix = utf8Key(options.continuingSubwordPrefix)
        endOfWordSuffix = utf8Key(options.endOfWordSuffix)
        self.merges = try BPEMerges(merges, vocabulary: vocabulary, prefixLength: continuingSubwordPrefix.count,
                                    location: "\(location).merges")
        unknownToken = options.unknownToken
        fuseUnknown = options.fuseUnknown
        byteFallback = options.byteFallback
        ignoreMerges = options.ignoreMerges
        self.location = location
    }

    func id(forToken token: [UInt8]) -> Int? { vocabulary[token] }

    func token(forID id: Int) -> String? { tokens[id] }

    func tokenize(_ word: [Unicode.Scalar]) throws -> [Int] {
        if ignoreMerges, let id = vocabulary[utf8Key(word)] { return [id] }
        var symbols: [Int] = []
        var pendingUnknown: Int?
        for (index, scalar) in word.enumerated() {
            var key = utf8Key(CollectionOfOne(scalar))
            if index > 0 { key = continuingSubwordPrefix + key }
            if index == word.count - 1 { key += endOfWordSuffix }
            if let id = vocabulary[key] {
                if let unknown = pendingUnknown { symbols.append(unknown) }
                pendingUnknown = nil
                symbols.append(id)
                continue
            }
            if byteFallback {
                let byteIDs = key.map { vocabulary[byteFallbackToken($0)] }
                if byteIDs.allSatisfy({ $0 != nil }) {
                    // `tokenizers` appends byte tokens without flushing a pending unknown token first.
                    symbols.append(contentsOf: byteIDs.map { $0! })
                    continue
                }
            }
            guard let unknownToken else { continue }
            guard let unknownID = vocabulary[utf8Key(unknownToken)] else {
                throw NunchakuError.invalidArgument(context: location(of: "unk_token"),
                                                    reason: "unknown token \"\(unknownToken)\" is not in the vocabulary")
            }
            if let unknown = pendingUnknown, !fuseUnknown { symbols.append(unknown) }
            pendingUnknown = unknownID
        }
        if let unknown = pendingUnknown { symbols.append(unknown) }
        return merges.apply(to: symbols)
    }

    private func location(of key: String) -> String { "\(location).\(key)" }
}
