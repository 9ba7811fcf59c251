/// GPT-2's byte-to-character table (`bytes_to_unicode`): every byte becomes a printable scalar, so byte-level BPE
/// vocabularies are plain strings. Printable Latin-1 bytes map to themselves, the other 68 to U+0100 onward.
enum ByteLevelAlphabet {
    /// The scalar standing for each byte.
    static let scalarForByte: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The byte each alphabet scalar stands for.
    static let byteForScalar: [Unicode.Scalar: UInt8] = Dictionary(
        uniqueKeysWithValues: scalarForByte.enumerated().map { ($0.element, UInt8($0.offset)) })

    /// The alphabet scalars for the UTF-8 bytes of `scalars`.
    static func encode(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        utf8Key(scalars).map { scalarForByte[Int($0)] }
    }
}
