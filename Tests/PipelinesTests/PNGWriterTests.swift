import Foundation
import Testing
import NunchakuCore
@testable import Pipelines

/// The PNG writer: checksums against published values, the file's structure parsed here, and the file read back by
/// independent decoders — Python's `zlib` (stdlib; required under `NUNCHAKU_CI`) and Pillow where it is installed.
struct PNGWriterTests {
    /// A 200×120 image (72 120 scanline bytes: two stored deflate blocks) with a gradient and a few edge values.
    static let image: RGBImage = {
        let (width, height) = (200, 120)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let index = (y * width + x) * 3
                pixels[index] = UInt8(x % 256)
                pixels[index + 1] = UInt8((y * 2) % 256)
                pixels[index + 2] = UInt8((x * 7 + y * 13) % 256)
            }
        }
        return try! RGBImage(width: width, height: height, pixels: pixels)
    }()

    static let text = [
        PNGWriter.TextEntry(keyword: "prompt", text: "a cat holding a sign that says hello world"),
        PNGWriter.TextEntry(keyword: "seed", text: "42"),
        PNGWriter.TextEntry(keyword: "Comment", text: "Grüße — 猫"),
    ]

    @Test func checksumsMatchPublishedValues() {
        #expect(Checksums.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(Checksums.crc32(Array("IEND".utf8)) == 0xAE42_6082)
        #expect(Checksums.adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
        // Past the 5552-byte reduction point: 0xFF × 100 000 computed with zlib.adler32.
        #expect(Checksums.adler32([UInt8](repeating: 0xFF, count: 100_000)) == 0x149A_302C)
    }

    @Test func fileStructureIsValid() throws {
        let bytes = try PNGWriter.encode(Self.image, text: Self.text)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let chunks = try parseChunks(bytes)
        #expect(chunks.map(\.type) == ["IHDR", "tEXt", "tEXt", "iTXt", "IDAT", "IEND"])
        #expect(chunks[0].data == [0, 0, 0, 200, 0, 0, 0, 120, 8, 2, 0, 0, 0])
        #expect(chunks[1].data == Array("prompt\0a cat holding a sign that says hello world".utf8))
        #expect(chunks[3].data == Array("Comment\0\0\0\0\0".utf8) + Array("Grüße — 猫".utf8))
        let stream = chunks[4].data
        #expect(stream.prefix(2) == [0x78, 0x01])
        #expect(stream[2] == 0, "the first of two stored blocks is not final")
        let raw = PNGWriter.scanlines(Self.image)
        #expect(raw.count == 120 * 601)
        #expect(stream.count == 2 + 2 * 5 + raw.count + 4)
        #expect(Array(stream.suffix(4)) == bigEndian(Checksums.adler32(raw)))
    }

    @Test func pythonZlibInflatesTheImageData() throws {
        guard let python = PNGPython.interpreter(importing: "zlib") else {
            #expect(!PNGPython.isRequired, "NUNCHAKU_CI is set but no Python interpreter runs")
            return
        }
        let folder = try TemporaryDirectory()
        let pngPath = folder.path("image.png"), rawPath = folder.path("raw.bin")
        try PNGWriter.write(Self.image, to: pngPath, text: Self.text)
        let script = """
        import sys, struct, zlib
        data = open(sys.argv[1], 'rb').read()
        assert data[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
        pos, idat, types = 8, b'', []
        while pos < len(data):
            length, kind = struct.unpack('>I4s', data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + length]
            (crc,) = struct.unpack('>I', data[pos + 8 + length:pos + 12 + length])
            assert zlib.crc32(kind + body) == crc, kind
            types.append(kind.decode())
            if kind == b'IDAT': idat += body
            pos += 12 + length
        assert types[0] == 'IHDR' and types[-1] == 'IEND', types
        open(sys.argv[2], 'wb').write(zlib.decompress(idat))
        """
        let (status, output) = try PNGPython.run(python, script, arguments: [pngPath, rawPath])
        #expect(status == 0, "python: \(output)")
        let inflated = try [UInt8](Data(contentsOf: URL(fileURLWithPath: rawPath)))
        #expect(inflated == PNGWriter.scanlines(Self.image))
    }

    @Test(.enabled(if: PNGPython.interpreter(importing: "PIL") != nil, "needs Pillow"))
    func pillowReadsPixelsAndText() throws {
        let python = try #require(PNGPython.interpreter(importing: "PIL"))
        let folder = try TemporaryDirectory()
        let pngPath = folder.path("image.png"), pixelsPath = folder.path("pixels.bin"), textPath = folder.path("text.json")
        try PNGWriter.write(Self.image, to: pngPath, text: Self.text)
        let script = """
        import sys, json
        from PIL import Image
        image = Image.open(sys.argv[1])
        image.load()
        assert image.mode == 'RGB' and image.size == (200, 120), (image.mode, image.size)
        open(sys.argv[2], 'wb').write(image.tobytes())
        json.dump(image.text, open(sys.argv[3], 'w', encoding='utf-8'))
        """
        let (status, output) = try PNGPython.run(python, script, arguments: [pngPath, pixelsPath, textPath])
        #expect(status == 0, "python: \(output)")
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: pixelsPath))) == Self.image.pixels)
        let text = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: textPath))) as? [String: String]
        #expect(text == Dictionary(uniqueKeysWithValues: Self.text.map { ($0.keyword, $0.text) }))
    }

    @Test func badTextEntriesAreRejected() {
        for keyword in ["", " lead", "trail ", "double  space", String(repeating: "k", count: 80), "tab\there", "猫"] {
            #expect(throws: NunchakuError.self, "keyword \"\(keyword)\"") {
                try PNGWriter.encode(Self.image, text: [.init(keyword: keyword, text: "x")])
            }
        }
        #expect(throws: NunchakuError.self) { try PNGWriter.encode(Self.image, text: [.init(keyword: "prompt", text: "a\0b")]) }
    }

    @Test func writingToAMissingFolderNamesThePath() {
        let path = "/nonexistent-folder-\(UInt32.random(in: 0...UInt32.max))/image.png"
        #expect(throws: NunchakuError.self) { try PNGWriter.write(Self.image, to: path) }
        do { try PNGWriter.write(Self.image, to: path) } catch { #expect("\(error)".contains(path)) }
    }
}

/// Chunks of a PNG file, each CRC-checked.
private func parseChunks(_ bytes: [UInt8]) throws -> [(type: String, data: [UInt8])] {
    var chunks = [(type: String, data: [UInt8])]()
    var position = 8
    while position < bytes.count {
        let length = bytes[position..<(position + 4)].reduce(0) { $0 << 8 | Int($1) }
        let typeBytes = Array(bytes[(position + 4)..<(position + 8)])
        let data = Array(bytes[(position + 8)..<(position + 8 + length)])
        let crc = bytes[(position + 8 + length)..<(position + 12 + length)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        #expect(crc == Checksums.crc32(typeBytes + data), "CRC of chunk \(String(decoding: typeBytes, as: UTF8.self))")
        chunks.append((String(decoding: typeBytes, as: UTF8.self), data))
        position += 12 + length
    }
    #expect(position == bytes.count)
    return chunks
}

private func bigEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
}

/// A Python interpreter for the decoder checks: `NUNCHAKU_PYTHON` or `python3`.
enum PNGPython {
    static let isRequired = Environment.value("NUNCHAKU_CI") != nil
    static let candidate = Environment.value("NUNCHAKU_PYTHON") ?? "python3"

    /// The interpreter when it runs and imports `module`, else nil.
    static func interpreter(importing module: String) -> String? {
        (try? run(candidate, "import \(module)", arguments: []).status) == 0 ? candidate : nil
    }

    static func run(_ interpreter: String, _ script: String, arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [interpreter, "-c", script] + arguments
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}

/// A fresh temporary folder, removed when the value goes away.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("nunchaku-png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}
