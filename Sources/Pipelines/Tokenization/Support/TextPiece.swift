/// A span of text moving through the tokenizer pipeline.
///
/// Text is handled as Unicode scalars, never as Swift `Character`s or `String` comparisons: `tokenizers` works on
/// Rust `char`s (scalars) and compares bytes exactly, while Swift's `String` equality and hashing follow canonical
/// equivalence, which would merge vocabulary entries that differ only in normalization form.
struct TextPiece {
    var scalars: [Unicode.Scalar]
    /// Whether the piece begins at offset 0 of the text passed to `encode`. `tokenizers` derives this from its
    /// offset tracking; the `Metaspace` pre-tokenizer with `prepend_scheme: first` reads it.
    var startsAtInputStart: Bool

    init(_ scalars: [Unicode.Scalar], startsAtInputStart: Bool) {
        self.scalars = scalars
        self.startsAtInputStart = startsAtInputStart
    }

    var isEmpty: Bool { scalars.isEmpty }

    /// The sub-piece `range`; it starts at the input's start only when this piece does and `range` starts at 0.
    func slice(_ range: Range<Int>) -> TextPiece {
        TextPiece(Array(scalars[range]), startsAtInputStart: startsAtInputStart && range.lowerBound == 0)
    }
}

extension String {
    /// A string holding exactly `scalars` (no normalization).
    init(scalars: some Sequence<Unicode.Scalar>) {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self.init(view)
    }

    /// The string's Unicode scalars.
    var scalarArray: [Unicode.Scalar] { Array(unicodeScalars) }
}

/// The UTF-8 bytes of `scalars`: the exact key under which `tokenizers` stores a vocabulary entry.
func utf8Key(_ scalars: some Sequence<Unicode.Scalar>) -> [UInt8] {
    var bytes: [UInt8] = []
    for scalar in scalars { bytes.append(contentsOf: UTF8.encode(scalar)!) }
    return bytes
}

/// The UTF-8 bytes of `text`.
func utf8Key(_ text: String) -> [UInt8] { Array(text.utf8) }

extension Unicode.Scalar {
    /// Rust's `char::is_whitespace`: the Unicode `White_Space` property.
    var isWhitespace: Bool { properties.isWhitespace }
}
