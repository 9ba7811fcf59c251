import NunchakuCore

/// SentencePiece-style word marking: spaces become `replacement` (▁), a ▁ is put in front (always, only at the
/// start of the input, or never), and with `split` the text is cut before every ▁.
struct MetaspacePreTokenizer: PreTokenizer {
    enum PrependScheme: String { case always, first, never }

    let replacement: Unicode.Scalar
    let prependScheme: PrependScheme
    let split: Bool

    init(replacement: Unicode.Scalar, prependScheme: PrependScheme, split: Bool) {
        self.replacement = replacement
        self.prependScheme = prependScheme
        self.split = split
    }

    /// Reads `replacement`, `prepend_scheme` (or the legacy `add_prefix_space`) and `split`.
    init(_ object: TokenizerJSONObject) throws {
        let text = try object.string("replacement").scalarArray
        guard text.count == 1 else { throw object.invalid("replacement", "expected one character, got \(text.count)") }
        let schemeName = try object.optionalString("prepend_scheme") ?? "always"
        guard let scheme = PrependScheme(rawValue: schemeName) else {
            throw object.invalid("prepend_scheme", "unknown scheme \"\(schemeName)\" (always, first or never)")
        }
        let addPrefixSpace = try object.bool("add_prefix_space", default: true)
        guard addPrefixSpace || scheme == .never else {
            throw object.invalid("add_prefix_space", "false contradicts prepend_scheme \"\(schemeName)\"")
        }
        self.init(replacement: text[0], prependScheme: scheme, split: try object.bool("split", default: true))
    }

    func preTokenize(_ pieces: [TextPiece]) throws -> [TextPiece] {
        pieces.flatMap { original -> [TextPiece] in
            var piece = original
            piece.scalars = piece.scalars.map { $0 == " " ? replacement : $0 }
            let startsMarked = piece.scalars.first == replacement
            switch prependScheme {
            case .always where !startsMarked, .first where !startsMarked && piece.startsAtInputStart:
                piece.scalars.insert(replacement, at: 0)
            default:
                break
            }
            guard split else { return [piece] }
            return SplitBehavior.mergedWithNext.split(piece, segments: characterSegments(piece.scalars) { $0 == replacement })
        }
    }
}
