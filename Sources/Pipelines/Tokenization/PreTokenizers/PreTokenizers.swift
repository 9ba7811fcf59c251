import NunchakuCore

/// One `pre_tokenizer` component of a tokenizer.json file: splits normalized text into the words the model
/// tokenizes one by one (and may rewrite them, as `ByteLevel` and `Metaspace` do).
protocol PreTokenizer: Sendable {
    func preTokenize(_ pieces: [TextPiece]) throws -> [TextPiece]
}

/// Builds the pre-tokenizer a tokenizer.json `pre_tokenizer` object describes.
func makePreTokenizer(_ object: TokenizerJSONObject) throws -> any PreTokenizer {
    switch try object.type {
    case "Sequence":
        return PreTokenizerSequence(steps: try object.objects("pretokenizers").map(makePreTokenizer))
    case "Split":
        return SplitPreTokenizer(
            pattern: try TextPattern(json: object["pattern"] ?? .null, location: object.location(of: "pattern")),
            behavior: try SplitBehavior(name: try object.string("behavior"), location: object.location(of: "behavior")),
            invert: try object.bool("invert", default: false))
    case "WhitespaceSplit":
        return WhitespaceSplitPreTokenizer()
    case "ByteLevel":
        return try ByteLevelPreTokenizer(addPrefixSpace: try object.bool("add_prefix_space", default: true),
                                         useRegex: try object.bool("use_regex", default: true))
    case "Metaspace":
        return try MetaspacePreTokenizer(object)
    case let other:
        throw object.unsupportedType(other, kind: "pre-tokenizer", supported: [
            "Sequence", "Split", "WhitespaceSplit", "ByteLevel", "Metaspace",
        ])
    }
}

struct PreTokenizerSequence: PreTokenizer {
    let steps: [any PreTokenizer]

    func preTokenize(_ pieces: [TextPiece]) throws -> [TextPiece] {
        try steps.reduce(pieces) { try $1.preTokenize($0) }
    }
}

/// What a split does with the text a pattern matched (`SplitDelimiterBehavior`).
enum SplitBehavior {
    case removed, isolated, mergedWithPrevious, mergedWithNext, contiguous

    init(name: String, location: String) throws {
        switch name {
        case "Removed": self = .removed
        case "Isolated": self = .isolated
        case "MergedWithPrevious": self = .mergedWithPrevious
        case "MergedWithNext": self = .mergedWithNext
        case "Contiguous": self = .contiguous
        default:
            throw NunchakuError.invalidArgument(context: location, reason: "unknown split behavior \"\(name)\"")
        }
    }

    /// Splits `piece` at `segments` (match / non-match spans covering it), dropping empty results
    /// (`NormalizedString::split` followed by `PreTokenizedString::split`).
    func split(_ piece: TextPiece, segments: [(range: Range<Int>, isMatch: Bool)]) -> [TextPiece] {
        var kept: [Range<Int>] = []
        switch self {
        case .removed:
            kept = segments.filter { !$0.isMatch }.map(\.range)
        case .isolated:
            kept = segments.map(\.range)
        case .contiguous:
            var previousMatch = false
            for segment in segments {
                if segment.isMatch == previousMatch, let last = kept.popLast() {
                    kept.append(last.lowerBound..<segment.range.upperBound)
                } else {
                    kept.append(segment.range)
                }
                previousMatch = segment.isMatch
            }
        case .mergedWithPrevious:
            var previousMatch = false
            for segment in segments {
                if segment.isMatch && !previousMatch, let last = kept.popLast() {
                    kept.append(last.lowerBound..<segment.range.upperBound)
                } else {
                    kept.append(segment.range)
                }
                previousMatch = segment.isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for segment in segments.reversed() {
                if segment.isMatch && !previousMatch, let last = kept.popLast() {
                    kept.append(segment.range.lowerBound..<last.upperBound)
                } else {
                    kept.append(segment.range)
                }
                previousMatch = segment.isMatch
            }
            kept.reverse()
        }
        return kept.filter { !$0.isEmpty }.map { piece.slice($0) }
    }
}

/// Splits on a string or regex pattern; `invert` swaps which spans count as matches.
struct SplitPreTokenizer: PreTokenizer {
    let pattern: TextPattern
    let behavior: SplitBehavior
    let invert: Bool

    func preTokenize(_ pieces: [TextPiece]) throws -> [TextPiece] {
        pieces.flatMap { piece in
            let segments = pattern.segments(of: piece.scalars).map { (range: $0.range, isMatch: $0.isMatch != invert) }
            return behavior.split(piece, segments: segments)
        }
    }
}

/// Splits on whitespace (Unicode `White_Space`), dropping it.
struct WhitespaceSplitPreTokenizer: PreTokenizer {
    func preTokenize(_ pieces: [TextPiece]) throws -> [TextPiece] {
        pieces.flatMap { piece in
            SplitBehavior.removed.split(piece, segments: characterSegments(piece.scalars) { $0.isWhitespace })
        }
    }
}

/// The spans of `text` for a per-character pattern: each matching scalar alone, the runs between them whole.
func characterSegments(_ text: [Unicode.Scalar], matching isMatch: (Unicode.Scalar) -> Bool)
    -> [(range: Range<Int>, isMatch: Bool)] {
    if text.isEmpty { return [(0..<0, false)] }
    var segments: [(range: Range<Int>, isMatch: Bool)] = []
    var runStart = 0
    for (index, scalar) in text.enumerated() where isMatch(scalar) {
        if runStart < index { segments.append((runStart..<index, false)) }
        segments.append((index..<(index + 1), true))
        runStart = index + 1
    }
    if runStart < text.count { segments.append((runStart..<text.count, false)) }
    return segments
}
