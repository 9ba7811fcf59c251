import NunchakuCore
import SafeTensors

/// One `normalizer` component of a tokenizer.json file: rewrites text before it is split into words.
protocol TextNormalizer: Sendable {
    func normalize(_ piece: inout TextPiece) throws
}

/// Builds the normalizer a tokenizer.json `normalizer` object describes.
func makeNormalizer(_ object: TokenizerJSONObject) throws -> any TextNormalizer {
    switch try object.type {
    case "Sequence":
        return NormalizerSequence(steps: try object.objects("normalizers").map(makeNormalizer))
    case "NFC": return UnicodeNormalizer(form: .nfc)
    case "NFD": return UnicodeNormalizer(form: .nfd)
    case "NFKC": return UnicodeNormalizer(form: .nfkc)
    case "NFKD": return UnicodeNormalizer(form: .nfkd)
    case "Lowercase": return LowercaseNormalizer()
    case "Nmt": return NmtNormalizer()
    case "StripAccents": return StripAccentsNormalizer()
    case "Strip":
        return StripNormalizer(left: try object.bool("strip_left", default: false),
                               right: try object.bool("strip_right", default: false))
    case "Prepend": return PrependNormalizer(prefix: try object.string("prepend").scalarArray)
    case "Replace":
        return ReplaceNormalizer(pattern: try TextPattern(json: object["pattern"] ?? .null, location: object.location(of: "pattern")),
                                 content: try object.string("content").scalarArray)
    case "Precompiled":
        return try PrecompiledNormalizer(base64: try object.string("precompiled_charsmap"),
                                         location: object.location(of: "precompiled_charsmap"))
    case let other:
        throw object.unsupportedType(other, kind: "normalizer", supported: [
            "Sequence", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Nmt", "StripAccents", "Strip", "Prepend",
            "Replace", "Precompiled",
        ])
    }
}

struct NormalizerSequence: TextNormalizer {
    let steps: [any TextNormalizer]

    func normalize(_ piece: inout TextPiece) throws {
        for step in steps { try step.normalize(&piece) }
    }
}
