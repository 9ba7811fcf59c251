import NunchakuCore

/// The `model` of a tokenizer.json file: turns one pre-tokenized word into token ids.
protocol TokenModel: Sendable {
    /// The ids for `word` (never empty input: pre-tokenizers drop empty words).
    func tokenize(_ word: [Unicode.Scalar]) throws -> [Int]
    /// The id of the vocabulary entry whose UTF-8 bytes are `token`.
    func id(forToken token: [UInt8]) -> Int?
    /// The vocabulary entry for `id`.
    func token(forID id: Int) -> String?
}

/// Builds the model a tokenizer.json `model` object describes.
func makeTokenModel(_ object: TokenizerJSONObject) throws -> any TokenModel {
    // Files written by old versions of `tokenizers` may omit `type`; BPE was the default then.
    let type = try object.optionalString("type") ?? (object["merges"] != nil ? "BPE" : "")
    switch type {
    case "BPE": return try BPEModel(object)
    case "Unigram": return try UnigramModel(object)
    case let other:
        throw object.unsupportedType(other.isEmpty ? "(none)" : other, kind: "model", supported: ["BPE", "Unigram"])
    }
}

/// `<0xAB>`: the name byte-fallback vocabularies give the token for one byte.
func byteFallbackToken(_ byte: UInt8) -> [UInt8] {
    let digits = Array("0123456789ABCDEF".utf8)
    return Array("<0x".utf8) + [digits[Int(byte >> 4)], digits[Int(byte & 0xF)], UInt8(ascii: ">")]
}
