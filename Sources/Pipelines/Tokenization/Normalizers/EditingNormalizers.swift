/// Removes leading and/or trailing whitespace.
struct StripNormalizer: TextNormalizer {
    let left: Bool
    let right: Bool

    func normalize(_ piece: inout TextPiece) {
        var start = 0
        var end = piece.scalars.count
        if left { while start < end, piece.scalars[start].isWhitespace { start += 1 } }
        if right { while end > start, piece.scalars[end - 1].isWhitespace { end -= 1 } }
        if start > 0 { piece.startsAtInputStart = false }
        piece.scalars = Array(piece.scalars[start..<end])
    }
}

/// Puts `prefix` in front of non-empty text.
struct PrependNormalizer: TextNormalizer {
    let prefix: [Unicode.Scalar]

    func normalize(_ piece: inout TextPiece) {
        if !piece.isEmpty { piece.scalars = prefix + piece.scalars }
    }
}

/// Replaces every match of a pattern with `content`.
struct ReplaceNormalizer: TextNormalizer {
    let pattern: TextPattern
    let content: [Unicode.Scalar]

    func normalize(_ piece: inout TextPiece) {
        piece.scalars = replacing(piece.scalars, leadingMatchRemoved: &piece.startsAtInputStart)
    }

    /// `text` with the matches replaced; clears `leadingMatchRemoved`'s flag when text at offset 0 is deleted.
    func replacing(_ text: [Unicode.Scalar], leadingMatchRemoved flag: inout Bool) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(text.count)
        var previous = 0
        for match in pattern.matches(in: text) {
            result.append(contentsOf: text[previous..<match.lowerBound])
            result.append(contentsOf: content)
            if match.lowerBound == 0 && !match.isEmpty && content.isEmpty { flag = false }
            previous = match.upperBound
        }
        result.append(contentsOf: text[previous...])
        return result
    }
}
