import NunchakuCore
import SafeTensors

/// The `decoder` of a tokenizer.json file: turns token strings back into text (`decode_chain`, then joined).
protocol TokenDecoder: Sendable {
    func decodeChain(_ tokens: [String]) -> [String]
}

/// Builds the decoder a tokenizer.json `decoder` object describes.
func makeDecoder(_ object: TokenizerJSONObject) throws -> any TokenDecoder {
    switch try object.type {
    case "Sequence":
        return DecoderSequence(steps: try object.objects("decoders").map(makeDecoder))
    case "ByteLevel":
        return ByteLevelDecoder()
    case "Metaspace":
        let metaspace = try MetaspacePreTokenizer(object)
        return MetaspaceDecoder(replacement: metaspace.replacement, prependScheme: metaspace.prependScheme)
    case "Replace":
        return ReplaceDecoder(
            normalizer: ReplaceNormalizer(
                pattern: try TextPattern(json: object["pattern"] ?? .null, location: object.location(of: "pattern")),
                content: try object.string("content").scalarArray))
    case "ByteFallback":
        return ByteFallbackDecoder()
    case "Fuse":
        return FuseDecoder()
    case "Strip":
        let content = try object.string("content").scalarArray
        guard content.count == 1 else { throw object.invalid("content", "expected one character") }
        return StripDecoder(content: content[0], start: try object.int("start"), stop: try object.int("stop"))
    case "BPEDecoder":
        return BPEDecoder(suffix: try object.optionalString("suffix") ?? "</w>")
    case let other:
        throw object.unsupportedType(other, kind: "decoder", supported: [
            "Sequence", "ByteLevel", "Metaspace", "Replace", "ByteFallback", "Fuse", "Strip", "BPEDecoder",
        ])
    }
}

struct DecoderSequence: TokenDecoder {
    let steps: [any TokenDecoder]

    func decodeChain(_ tokens: [String]) -> [String] { steps.reduce(tokens) { $1.decodeChain($0) } }
}

/// Maps byte-level alphabet scalars back to bytes and decodes UTF-8 (invalid sequences become U+FFFD). A token
/// holding a scalar outside the alphabet contributes its own UTF-8 bytes.
struct ByteLevelDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var bytes: [UInt8] = []
        for token in tokens {
            let mapped = token.unicodeScalars.map { ByteLevelAlphabet.byteForScalar[$0] }
            if mapped.allSatisfy({ $0 != nil }) {
                bytes.append(contentsOf: mapped.map { $0! })
            } else {
                bytes.append(contentsOf: token.utf8)
            }
        }
        return [String(decoding: bytes, as: UTF8.self)]
    }
}

/// Turns ▁ back into spaces, dropping the one prepended to the first token unless the scheme is `never`.
struct MetaspaceDecoder: TokenDecoder {
    let replacement: Unicode.Scalar
    let prependScheme: MetaspacePreTokenizer.PrependScheme

    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { index, token in
            String(scalars: token.unicodeScalars.compactMap { scalar -> Unicode.Scalar? in
                guard scalar == replacement else { return scalar }
                return index == 0 && prependScheme != .never ? nil : " "
            })
        }
    }
}

struct ReplaceDecoder: TokenDecoder {
    let normalizer: ReplaceNormalizer

    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map { token in
            var unused = true
            return String(scalars: normalizer.replacing(token.scalarArray, leadingMatchRemoved: &unused))
        }
    }
}

/// Gathers runs of `<0xAB>` tokens into the text their bytes spell (one U+FFFD per byte when not valid UTF-8).
struct ByteFallbackDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var result: [String] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if let text = String(validating: pending, as: UTF8.self) {
                result.append(text)
            } else {
                result.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
            }
            pending = []
        }
        for token in tokens {
            let bytes = Array(token.utf8)
            if bytes.count == 6, bytes.starts(with: Array("<0x".utf8)), bytes[5] == UInt8(ascii: ">"),
               let byte = UInt8(String(decoding: bytes[3..<5], as: UTF8.self), radix: 16) {
                pending.append(byte)
            } else {
                flush()
                result.append(token)
            }
        }
        flush()
        return result
    }
}

struct FuseDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] { [tokens.joined()] }
}

/// Removes up to `start` leading and `stop` trailing `content` characters from every token.
struct StripDecoder: TokenDecoder {
    let content: Unicode.Scalar
    let start: Int
    let stop: Int

    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map { token in
            let scalars = token.scalarArray
            var head = 0
            while head < min(start, scalars.count), scalars[head] == content { head += 1 }
            var tail = scalars.count
            while scalars.count - tail < stop, tail > head, scalars[tail - 1] == content { tail -= 1 }
            return String(scalars: scalars[head..<tail])
        }
    }
}

/// Replaces the end-of-word suffix with a space (nothing after the last token).
struct BPEDecoder: TokenDecoder {
    let suffix: String

    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { index, token in
            token.replacing(suffix, with: index == tokens.count - 1 ? "" : " ")
        }
    }
}
