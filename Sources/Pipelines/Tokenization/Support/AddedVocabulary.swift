import NunchakuCore
import SafeTensors

/// One entry of tokenizer.json's `added_tokens`.
struct AddedToken: Sendable {
    let id: Int
    let content: [Unicode.Scalar]
    /// Matches only when not inside a word (no `\w` character on either side).
    let singleWord: Bool
    /// The match also takes the whitespace to its left / right.
    let leftStrip: Bool
    let rightStrip: Bool
    /// Matched on normalized text (against the normalized content) instead of the raw input.
    let normalized: Bool
    /// Special tokens are dropped by `decode(skipSpecialTokens: true)`.
    let special: Bool
}

/// A stretch of input after the added tokens were cut out: text still to tokenize, or one added token's id.
enum InputSegment {
    case text(TextPiece)
    case token(Int)
}

/// The added tokens and the first encoding step, which cuts them out of the text
/// (`AddedVocabulary::extract_and_normalize`): tokens with `normalized: false` are found in the raw text, the
/// remaining text is normalized, and then tokens with `normalized: true` are found in it. Matching is leftmost,
/// longest first, non-overlapping.
struct AddedVocabulary: Sendable {
    let tokens: [AddedToken]
    /// The tokens matched on normalized text, as their normalized content.
    private let normalizedPatterns: PatternSet
    /// The tokens matched on the raw input.
    private let rawPatterns: PatternSet

    /// Per id: the text `decode` shows (the normalized content for `normalized` tokens, as in `tokenizers`) and
    /// whether the token is special.
    private let decodedForms: [Int: (text: String, special: Bool)]
    private let idsByContent: [[UInt8]: Int]

    /// Patterns grouped by their first scalar, so the search looks only at candidates.
    private typealias PatternSet = [Unicode.Scalar: [(pattern: [Unicode.Scalar], token: AddedToken)]]

    /// Reads `added_tokens`. A token's id is the model's id for its content when the model has one (as
    /// `tokenizers` does on load), else the id in the file.
    init(_ entries: [TokenizerJSONObject], model: any TokenModel, normalizer: (any TextNormalizer)?) throws {
        var tokens: [AddedToken] = []
        for entry in entries {
            let content = try entry.string("content")
            guard !content.isEmpty else { continue }
            let special = try entry.bool("special", default: false)
            tokens.append(AddedToken(
                id: try model.id(forToken: utf8Key(content)) ?? entry.int("id"),
                content: content.scalarArray,
                singleWord: try entry.bool("single_word", default: false),
                leftStrip: try entry.bool("lstrip", default: false),
                rightStrip: try entry.bool("rstrip", default: false),
                normalized: try entry.bool("normalized", default: !special),
                special: special))
        }
        self.tokens = tokens
        let normalizedForms = try tokens.filter(\.normalized).map { token in
            var piece = TextPiece(token.content, startsAtInputStart: true)
            try normalizer?.normalize(&piece)
            return (pattern: piece.scalars, token: token)
        }
        rawPatterns = Self.patternSet(tokens.filter { !$0.normalized }.map { ($0.content, $0) })
        normalizedPatterns = Self.patternSet(normalizedForms)
        var decodedForms: [Int: (text: String, special: Bool)] = [:]
        for token in tokens { decodedForms[token.id] = (String(scalars: token.content), token.special) }
        for form in normalizedForms { decodedForms[form.token.id] = (String(scalars: form.pattern), form.token.special) }
        self.decodedForms = decodedForms
        idsByContent = Dictionary(tokens.map { (utf8Key($0.content), $0.id) }, uniquingKeysWith: { _, last in last })
    }

    /// The text `decode` shows for added token `id` and whether it is special, or nil when `id` is not added.
    func token(forID id: Int) -> (text: String, special: Bool)? { decodedForms[id] }

    /// The id of the added token whose content is exactly `content`.
    func id(forContent content: [Unicode.Scalar]) -> Int? { idsByContent[utf8Key(content)] }

    private static func patternSet(_ patterns: [(pattern: [Unicode.Scalar], token: AddedToken)]) -> PatternSet {
        Dictionary(grouping: patterns.filter { !$0.pattern.isEmpty }) { $0.pattern[0] }
    }

    /// `text` cut at the added tokens, its text segments normalized; empty segments are dropped.
    func extract(from text: [Unicode.Scalar], normalizer: (any TextNormalizer)?) throws -> [InputSegment] {
        var segments: [InputSegment] = []
        for segment in split(TextPiece(text, startsAtInputStart: true), on: rawPatterns) {
            guard case var .text(piece) = segment else {
                segments.append(segment)
                continue
            }
            try normalizer?.normalize(&piece)
            segments.append(contentsOf: split(piece, on: normalizedPatterns))
        }
        return segments.filter {
            if case let .text(piece) = $0 { return !piece.isEmpty }
            return true
        }
    }

    /// `find_matches` + `split_with_indices` for one pattern set.
    private func split(_ piece: TextPiece, on patterns: PatternSet) -> [InputSegment] {
        let text = piece.scalars
        guard !patterns.isEmpty, !text.isEmpty else { return [.text(piece)] }
        var segments: [InputSegment] = []
        var consumed = 0
        var searchFrom = 0
        while searchFrom < text.count {
            guard let (match, token) = leftmostLongestMatch(in: text, from: searchFrom, patterns: patterns) else { break }
            searchFrom = match.upperBound
            var start = match.lowerBound
            var end = match.upperBound
            if token.singleWord {
                let wordBefore = start > 0 && text[start - 1].isWordCharacter
                let wordAfter = end < text.count && text[end].isWordCharacter
                if wordBefore || wordAfter { continue }
            }
            if token.leftStrip {
                while start > consumed, text[start - 1].isWhitespace { start -= 1 }
            }
            if token.rightStrip {
                while end < text.count, text[end].isWhitespace { end += 1 }
            }
            if consumed < start { segments.append(.text(piece.slice(consumed..<start))) }
            segments.append(.token(token.id))
            consumed = end
        }
        if consumed < text.count { segments.append(.text(piece.slice(consumed..<text.count))) }
        return segments
    }

    /// The earliest match at or after `from`, the longest one among those starting there.
    private func leftmostLongestMatch(in text: [Unicode.Scalar], from: Int, patterns: PatternSet)
        -> (Range<Int>, AddedToken)? {
        for start in from..<text.count {
            var best: (Range<Int>, AddedToken)?
            for (pattern, token) in patterns[text[start]] ?? [] where pattern.count > (best?.0.count ?? 0) {
                if start + pattern.count <= text.count, text[start..<(start + pattern.count)].elementsEqual(pattern) {
                    best = (start..<(start + pattern.count), token)
                }
            }
            if let best { return best }
        }
        return nil
    }
}

extension Unicode.Scalar {
    /// The Rust `regex` crate's Unicode `\w`: Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
    var isWordCharacter: Bool {
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }
}
