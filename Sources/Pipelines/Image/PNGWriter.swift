import Foundation
import NunchakuCore

/// Writes 8-bit RGB PNG files in pure Swift.
///
/// The image data is one zlib stream (RFC 1950) of *stored* deflate blocks (RFC 1951 §3.2.4, no compression, so a
/// 1024² image takes about 3 MiB) over the scanlines, each preceded by filter type 0, with its Adler-32; the stream is
/// split over `IDAT` chunks of at most 1 MiB, and every chunk carries its CRC-32. Text entries (prompt, seed,
/// settings) become `tEXt` chunks when they are plain ASCII and `iTXt` chunks (uncompressed UTF-8) otherwise, so any
/// standard decoder reads them back.
public enum PNGWriter {
    /// One text entry: a keyword (1–79 printable Latin-1 characters, no leading, trailing or double spaces) and its text.
    public struct TextEntry: Sendable, Equatable {
        public let keyword: String
        public let text: String

        public init(keyword: String, text: String) {
            self.keyword = keyword
            self.text = text
        }
    }

    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    /// The most bytes one stored deflate block holds.
    static let storedBlockLimit = 65_535
    /// The zlib stream is split over `IDAT` chunks of at most this many bytes (decoders join them).
    static let idatChunkLimit = 1 << 20

    /// The PNG file's bytes.
    /// - Throws: `NunchakuError.invalidArgument` for a keyword PNG does not allow or text holding a NUL character.
    public static func encode(_ image: RGBImage, text: [TextEntry] = []) throws -> [UInt8] {
        var file = signature
        var header = [UInt8]()
        appendBigEndian(UInt32(image.width), to: &header)
        appendBigEndian(UInt32(image.height), to: &header)
        header += [8, 2, 0, 0, 0]  // bit depth 8, colour type 2 (RGB), deflate, filter method 0, no interlace
        appendChunk("IHDR", header, to: &file)
        for entry in text { appendChunk(try textChunk(entry), to: &file) }
        let stream = zlibStored(scanlines(image))
        for start in stride(from: 0, to: stream.count, by: idatChunkLimit) {
            appendChunk("IDAT", Array(stream[start..<min(stream.count, start + idatChunkLimit)]), to: &file)
        }
        appendChunk("IEND", [], to: &file)
        return file
    }

    /// Writes the PNG file to `path`, replacing any file there.
    /// - Throws: `NunchakuError.io` naming the path when it cannot be written, or an `encode` error.
    public static func write(_ image: RGBImage, to path: String, text: [TextEntry] = []) throws {
        let bytes = try encode(image, text: text)
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw NunchakuError.io(path: path, reason: "cannot write the PNG file: \(error.localizedDescription)")
        }
    }

    /// Each row as filter byte 0 followed by its pixels.
    static func scanlines(_ image: RGBImage) -> [UInt8] {
        let rowBytes = image.width * 3
        var raw = [UInt8]()
        raw.reserveCapacity(image.height * (rowBytes + 1))
        for row in 0..<image.height {
            raw.append(0)
            raw += image.pixels[(row * rowBytes)..<((row + 1) * rowBytes)]
        }
        return raw
    }

    /// A zlib stream holding `data` in stored deflate blocks.
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var stream: [UInt8] = [0x78, 0x01]  // deflate, 32 KiB window; (0x78·256 + 0x01) is a multiple of 31
        var start = 0
        repeat {
            let end = min(data.count, start + storedBlockLimit)
            let length = UInt16(end - start)
            stream.append(end == data.count ? 1 : 0)  // BFINAL, BTYPE 00 (stored)
            stream += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8(~length >> 8)]
            stream += data[start..<end]
            start = end
        } while start < data.count
        appendBigEndian(Checksums.adler32(data), to: &stream)
        return stream
    }

    /// A `tEXt` (ASCII text) or `iTXt` (other text, UTF-8) chunk's type and data.
    static func textChunk(_ entry: TextEntry) throws -> (type: String, data: [UInt8]) {
        let keyword = entry.keyword
        let validKeyword = (1...79).contains(keyword.unicodeScalars.count)
            && keyword.unicodeScalars.allSatisfy { (32...126).contains($0.value) || (161...255).contains($0.value) }
            && !keyword.hasPrefix(" ") && !keyword.hasSuffix(" ") && !keyword.contains("  ")
        guard validKeyword else {
            throw NunchakuError.invalidArgument(
                context: "PNG text keyword \"\(keyword)\"", reason: "must be 1–79 printable Latin-1 characters without leading, trailing or double spaces")
        }
        guard !entry.text.unicodeScalars.contains("\0") else {
            throw NunchakuError.invalidArgument(context: "PNG text \"\(keyword)\"", reason: "the text contains a NUL character")
        }
        let keywordBytes = keyword.unicodeScalars.map { UInt8($0.value) }
        if entry.text.unicodeScalars.allSatisfy(\.isASCII) {
            return ("tEXt", keywordBytes + [0] + Array(entry.text.utf8))
        }
        // keyword, NUL, compression flag 0, method 0, empty language tag + NUL, empty translated keyword + NUL, UTF-8.
        return ("iTXt", keywordBytes + [0, 0, 0, 0, 0] + Array(entry.text.utf8))
    }

    private static func appendChunk(_ chunk: (type: String, data: [UInt8]), to file: inout [UInt8]) {
        appendChunk(chunk.type, chunk.data, to: &file)
    }

    /// Length, type, data, then the CRC-32 of type and data.
    private static func appendChunk(_ type: String, _ data: [UInt8], to file: inout [UInt8]) {
        let typeBytes = Array(type.utf8)
        appendBigEndian(UInt32(data.count), to: &file)
        file += typeBytes
        file += data
        appendBigEndian(Checksums.crc32(data, continuing: Checksums.crc32(typeBytes)), to: &file)
    }

    private static func appendBigEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}
