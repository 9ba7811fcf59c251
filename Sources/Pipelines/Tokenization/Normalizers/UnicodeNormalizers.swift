import Foundation

/// The four Unicode normalization forms (Foundation's implementation of UAX #15).
struct UnicodeNormalizer: TextNormalizer {
    enum Form { case nfc, nfd, nfkc, nfkd }
    let form: Form

    func normalize(_ piece: inout TextPiece) {
        let text = String(scalars: piece.scalars)
        let normalized = switch form {
        case .nfc: text.precomposedStringWithCanonicalMapping
        case .nfd: text.decomposedStringWithCanonicalMapping
        case .nfkc: text.precomposedStringWithCompatibilityMapping
        case .nfkd: text.decomposedStringWithCompatibilityMapping
        }
        piece.scalars = normalized.scalarArray
    }
}

/// Rust's `char::to_lowercase` on every scalar: the full, context-free Unicode lowercase mapping.
struct LowercaseNormalizer: TextNormalizer {
    func normalize(_ piece: inout TextPiece) {
        piece.scalars = piece.scalars.flatMap { scalar -> [Unicode.Scalar] in
            if ("A"..."Z").contains(scalar) { return [Unicode.Scalar(scalar.value + 0x20)!] }
            if scalar.value < 0x80 { return [scalar] }
            return scalar.properties.lowercaseMapping.scalarArray
        }
    }
}

/// SentencePiece's NMT normalization: drops most control characters and maps a few spaces and separators to ' '.
struct NmtNormalizer: TextNormalizer {
    func normalize(_ piece: inout TextPiece) {
        var result: [Unicode.Scalar] = []
        for (index, scalar) in piece.scalars.enumerated() {
            switch scalar.value {
            case 0x0001...0x0008, 0x000B, 0x000E...0x001F, 0x007F, 0x008F, 0x009F:
                if index == 0 { piece.startsAtInputStart = false }
            case 0x0009, 0x000A, 0x000C, 0x000D, 0x1680, 0x200B...0x200F, 0x2028, 0x2029, 0x2581, 0xFEFF, 0xFFFD:
                result.append(" ")
            default:
                result.append(scalar)
            }
        }
        piece.scalars = result
    }
}

/// Removes combining marks (general categories Mn, Mc, Me).
struct StripAccentsNormalizer: TextNormalizer {
    func normalize(_ piece: inout TextPiece) {
        if let first = piece.scalars.first, first.isCombiningMark { piece.startsAtInputStart = false }
        piece.scalars.removeAll { $0.isCombiningMark }
    }
}

extension Unicode.Scalar {
    var isCombiningMark: Bool {
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: true
        default: false
        }
    }
}
