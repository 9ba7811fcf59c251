import NunchakuCore
import SafeTensors

/// The `pattern` of a `Split` pre-tokenizer or a `Replace` normalizer/decoder: `{"String": …}` or `{"Regex": …}`.
///
/// Regexes run on Swift `Regex` with Unicode-scalar semantics. `tokenizers` uses Oniguruma; the two agree on the
/// constructs tokenizer files use (`\s` = White_Space, `\p{L}`, `\p{N}`, `\d` = Nd, `(?i:…)`, `(?!…)`), which the
/// parity fixtures check. `\w`, `\W`, `\b` and `\B` differ between the engines (Oniguruma's word set is Alphabetic,
/// marks, all numbers and Pc), so patterns using them are rejected rather than matched differently.
enum TextPattern: @unchecked Sendable {
    // @unchecked: `Regex` is an immutable value whose lazily built program is guarded by the standard library.
    case literal([Unicode.Scalar])
    case regex(Regex<AnyRegexOutput>)

    /// Parses a `{"String": …}` / `{"Regex": …}` object at `location`.
    init(json: JSONValue, location: String) throws {
        let object = try TokenizerJSONObject(json, location: location)
        if let literal = try object.optionalString("String") {
            guard !literal.isEmpty else { throw object.invalid("String", "an empty pattern is not supported") }
            self = .literal(literal.scalarArray)
        } else if let pattern = try object.optionalString("Regex") {
            self = try TextPattern(regex: pattern, location: object.location(of: "Regex"))
        } else {
            throw NunchakuError.invalidArgument(context: location, reason: "expected a \"String\" or \"Regex\" member")
        }
    }

    /// Compiles an Oniguruma-style regex, rejecting the constructs whose meaning differs in Swift.
    init(regex pattern: String, location: String) throws {
        if let construct = TextPattern.engineDependentEscape(in: pattern) {
            throw NunchakuError.unsupported(
                context: location,
                reason: "regex \(pattern) uses \(construct), whose meaning differs between Oniguruma and Swift Regex")
        }
        do {
            self = .regex(try Regex(pattern).matchingSemantics(.unicodeScalar))
        } catch {
            throw NunchakuError.invalidArgument(context: location, reason: "regex \(pattern) does not compile: \(error)")
        }
    }

    /// The first of `\w \W \b \B` written in `pattern` (outside an escaped backslash), if any.
    private static func engineDependentEscape(in pattern: String) -> String? {
        var escaped = false
        for character in pattern.unicodeScalars {
            if escaped {
                if "wWbB".unicodeScalars.contains(character) { return "\\\(character)" }
                escaped = false
            } else if character == "\\" {
                escaped = true
            }
        }
        return nil
    }

    /// The matches in `text`, as scalar offset ranges, in order and non-overlapping. Follows the Oniguruma iterator
    /// `tokenizers` uses: an empty match right where the previous match ended is skipped.
    func matches(in text: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case let .literal(needle):
            return TextPattern.literalMatches(of: needle, in: text)
        case let .regex(regex):
            let string = String(scalars: text)
            let view = string.unicodeScalars
            var ranges: [Range<Int>] = []
            var lastIndex = view.startIndex
            var lastOffset = 0
            var previousEnd: Int?
            for match in string.matches(of: regex) {
                let start = lastOffset + view.distance(from: lastIndex, to: match.range.lowerBound)
                let end = start + view.distance(from: match.range.lowerBound, to: match.range.upperBound)
                lastIndex = match.range.upperBound
                lastOffset = end
                if start == end && previousEnd == end { continue }
                ranges.append(start..<end)
                previousEnd = end
            }
            return ranges
        }
    }

    private static func literalMatches(of needle: [Unicode.Scalar], in text: [Unicode.Scalar]) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        while start + needle.count <= text.count {
            if text[start..<(start + needle.count)].elementsEqual(needle) {
                ranges.append(start..<(start + needle.count))
                start += needle.count
            } else {
                start += 1
            }
        }
        return ranges
    }

    /// `text` cut into consecutive spans covering all of it, each marked as a match or not (`Pattern::find_matches`).
    func segments(of text: [Unicode.Scalar]) -> [(range: Range<Int>, isMatch: Bool)] {
        if text.isEmpty { return [(0..<0, false)] }
        var segments: [(range: Range<Int>, isMatch: Bool)] = []
        var previous = 0
        for match in matches(in: text) {
            if previous != match.lowerBound { segments.append((previous..<match.lowerBound, false)) }
            segments.append((match, true))
            previous = match.upperBound
        }
        if previous != text.count { segments.append((previous..<text.count, false)) }
        return segments
    }
}
