/// GPT-2's byte-level pre-tokenizer: optionally a leading space, the GPT-2 word regex (isolating its matches),
/// then every UTF-8 byte of each word replaced by its `ByteLevelAlphabet` scalar.
struct ByteLevelPreTokenizer: PreTokenizer {
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    let addPrefixSpace: Bool
    let wordPattern: TextPattern?

    init(addPrefixSpace: Bool, useRegex: Bool) throws {
        self.addPrefixSpace = addPrefixSpace
        wordPattern = useRegex ? try TextPattern(regex: Self.gpt2Pattern, location: "ByteLevel pre-tokenizer") : nil
    }

    func preTokenize(_ pieces: [TextPiece]) throws -> [TextPiece] {
        pieces.flatMap { original -> [TextPiece] in
            var piece = original
            if addPrefixSpace && piece.scalars.first != " " { piece.scalars.insert(" ", at: 0) }
            let words = wordPattern.map { SplitBehavior.isolated.split(piece, segments: $0.segments(of: piece.scalars)) }
                ?? [piece]
            return words.map { TextPiece(ByteLevelAlphabet.encode($0.scalars), startsAtInputStart: $0.startsAtInputStart) }
        }
    }
}
