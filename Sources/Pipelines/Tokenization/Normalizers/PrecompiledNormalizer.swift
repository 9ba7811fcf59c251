import Foundation
import NunchakuCore

/// SentencePiece's compiled normalization rules (`nmt_nfkc` for T5), as `tokenizers` applies them.
///
/// The charsmap is `[u32 LE trie byte count][Darts-clone double array, u32 LE units][NUL-terminated replacements]`.
/// Text is walked grapheme by grapheme: a grapheme under 6 UTF-8 bytes is looked up whole, and the *shortest* rule
/// matching its start replaces the whole grapheme (`tokenizers`' documented quirk, kept for parity); otherwise, or
/// when nothing matches, each scalar is looked up alone and kept when no rule applies.
struct PrecompiledNormalizer: TextNormalizer {
    private let units: [UInt32]
    private let replacements: [UInt8]
    private let location: String

    init(base64: String, location: String) throws {
        guard let data = Data(base64Encoded: base64) else {
            throw NunchakuError.invalidArgument(context: location, reason: "not valid base64")
        }
        try self.init(bytes: [UInt8](data), location: location)
    }

    init(bytes: [UInt8], location: String) throws {
        guard bytes.count >= 4 else {
            throw NunchakuError.invalidArgument(context: location, reason: "\(bytes.count) bytes, too short for a charsmap")
        }
        let trieByteCount = Int(PrecompiledNormalizer.loadUInt32(bytes, at: 0))
        guard trieByteCount % 4 == 0, trieByteCount >= 4, 4 + trieByteCount <= bytes.count else {
            throw NunchakuError.invalidArgument(
                context: location, reason: "trie of \(trieByteCount) bytes does not fit the \(bytes.count)-byte charsmap")
        }
        units = (0..<(trieByteCount / 4)).map { PrecompiledNormalizer.loadUInt32(bytes, at: 4 + $0 * 4) }
        replacements = Array(bytes[(4 + trieByteCount)...])
        guard String(validating: replacements, as: UTF8.self) != nil else {
            throw NunchakuError.invalidArgument(context: location, reason: "replacement strings are not valid UTF-8")
        }
        self.location = location
    }

    private static func loadUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    func normalize(_ piece: inout TextPiece) throws {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(piece.scalars.count)
        var modified = false
        for (graphemeIndex, grapheme) in String(scalars: piece.scalars).enumerated() {
            let scalars = grapheme.unicodeScalars
            if grapheme.utf8.count < 6, let replacement = try replacement(for: utf8Key(grapheme.unicodeScalars)) {
                result.append(contentsOf: replacement)
                if graphemeIndex == 0 && replacement.isEmpty { piece.startsAtInputStart = false }
                modified = true
                continue
            }
            for (scalarIndex, scalar) in scalars.enumerated() {
                if let replacement = try replacement(for: utf8Key(CollectionOfOne(scalar))) {
                    result.append(contentsOf: replacement)
                    if graphemeIndex == 0 && scalarIndex == 0 && replacement.isEmpty { piece.startsAtInputStart = false }
                    modified = true
                } else {
                    result.append(scalar)
                }
            }
        }
        if modified { piece.scalars = result }
    }

    /// The replacement of the shortest rule that is a prefix of `key`, or nil when none is.
    /// - Throws: when the trie points outside itself or its replacement table (a corrupt charsmap).
    private func replacement(for key: [UInt8]) throws -> [Unicode.Scalar]? {
        guard let valueOffset = try shortestPrefixValue(key) else { return nil }
        guard valueOffset <= replacements.count else {
            throw corrupt("replacement offset \(valueOffset) beyond the \(replacements.count)-byte table")
        }
        let end = replacements[valueOffset...].firstIndex(of: 0) ?? replacements.count
        return String(decoding: replacements[valueOffset..<end], as: UTF8.self).scalarArray
    }

    /// The Darts-clone `common_prefix_search`, stopped at its first result.
    private func shortestPrefixValue(_ key: [UInt8]) throws -> Int? {
        var position = try offset(of: unit(at: 0))
        for byte in key {
            if byte == 0 { break }
            position ^= Int(byte)
            let current = try unit(at: position)
            guard current & ((1 << 31) | 0xFF) == UInt32(byte) else { return nil }
            position ^= offset(of: current)
            if (current >> 8) & 1 == 1 {
                return Int(try unit(at: position) & 0x7FFF_FFFF)
            }
        }
        return nil
    }

    private func unit(at index: Int) throws -> UInt32 {
        guard index >= 0, index < units.count else {
            throw corrupt("trie index \(index) outside its \(units.count) units")
        }
        return units[index]
    }

    private func offset(of unit: UInt32) -> Int {
        Int((unit >> 10) << ((unit & (1 << 9)) >> 6))
    }

    private func corrupt(_ reason: String) -> NunchakuError {
        .invalidArgument(context: location, reason: "corrupt charsmap: \(reason)")
    }
}
