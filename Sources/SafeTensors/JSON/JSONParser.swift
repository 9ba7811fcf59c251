/// A strict JSON parser (RFC 8259) for safetensors headers, shard indexes and config files.
///
/// Unlike Foundation's parser it rejects duplicate object keys (the safetensors format forbids
/// them), limits nesting to `maximumDepth` instead of recursing without bound, rejects unpaired
/// UTF-16 surrogate escapes and malformed UTF-8, and behaves the same on every platform.
/// Keys are compared by their exact Unicode scalars, not by Swift's canonical equivalence.
struct JSONParser {
    /// The deepest nesting of arrays and objects accepted (serde_json's default limit).
    static let maximumDepth = 128

    private let bytes: UnsafeRawBufferPointer
    private var position = 0

    private init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Parses one JSON value surrounded by optional whitespace.
    /// - Throws: `JSONParseError` naming the byte offset and the problem.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else {
            throw parser.failure("unexpected \(parser.describeCurrent()) after the JSON value")
        }
        return value
    }

    // MARK: Values

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard position < bytes.count else { throw failure("unexpected end of text, expected a value") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw failure("unexpected \(describeCurrent()), expected a value")
        }
    }

    private mutating func parseObject(depth: Int) throws -> JSONValue {
        try checkDepth(depth)
        position += 1
        var members: [JSONMember] = []
        var seenKeys = Set<[Unicode.Scalar]>()
        skipWhitespace()
        if peek(UInt8(ascii: "}")) {
            position += 1
            return .object(members)
        }
        while true {
            guard peek(UInt8(ascii: "\"")) else { throw failure("unexpected \(describeCurrent()), expected a string key") }
            let keyOffset = position
            let key = try parseString()
            guard seenKeys.insert(Array(key.unicodeScalars)).inserted else {
                throw JSONParseError(offset: keyOffset, reason: "duplicate key \(quoted(key))", duplicateKey: (key, depth))
            }
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':' after an object key")
            skipWhitespace()
            members.append(JSONMember(key, try parseValue(depth: depth)))
            skipWhitespace()
            if peek(UInt8(ascii: ",")) {
                position += 1
                skipWhitespace()
                continue
            }
            try expect(UInt8(ascii: "}"), "',' or '}' in an object")
            return .object(members)
        }
    }

    private mutating func parseArray(depth: Int) throws -> JSONValue {
        try checkDepth(depth)
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek(UInt8(ascii: "]")) {
            position += 1
            return .array(elements)
        }
        while true {
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            if peek(UInt8(ascii: ",")) {
                position += 1
                skipWhitespace()
                continue
            }
            try expect(UInt8(ascii: "]"), "',' or ']' in an array")
            return .array(elements)
        }
    }

    private func checkDepth(_ depth: Int) throws {
        if depth > Self.maximumDepth {
            throw failure("arrays and objects nested deeper than \(Self.maximumDepth) levels")
        }
    }

    // MARK: Strings

    /// Parses a string starting at the opening quote, decoding escapes and checking UTF-8.
    private mutating func parseString() throws -> String {
        position += 1
        var text: [UInt8] = []
        while true {
            guard position < bytes.count else { throw failure("unterminated string") }
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: text, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try parseEscape(into: &text)
            case 0x00..<0x20:
                throw failure("control character \(hexByte(byte)) inside a string must be escaped")
            case 0x20..<0x80:
                text.append(byte)
                position += 1
            default:
                guard let length = UTF8Validation.sequenceLength(in: bytes, at: position) else {
                    throw failure("malformed UTF-8 inside a string")
                }
                text.append(contentsOf: bytes[position..<(position + length)])
                position += length
            }
        }
    }

    private mutating func parseEscape(into text: inout [UInt8]) throws {
        guard position + 1 < bytes.count else { throw failure("unterminated escape sequence") }
        let code = bytes[position + 1]
        position += 2
        let simple: UInt8? = switch code {
        case UInt8(ascii: "\""): UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): UInt8(ascii: "\\")
        case UInt8(ascii: "/"): UInt8(ascii: "/")
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "f"): 0x0C
        case UInt8(ascii: "n"): 0x0A
        case UInt8(ascii: "r"): 0x0D
        case UInt8(ascii: "t"): 0x09
        default: nil
        }
        if let simple {
            text.append(simple)
            return
        }
        guard code == UInt8(ascii: "u") else {
            position -= 1
            throw failure("invalid escape '\\\(describe(code))'")
        }
        let first = try parseHex4()
        let scalarValue: UInt32
        switch first {
        case 0xD800...0xDBFF:
            guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                throw failure("unpaired UTF-16 high surrogate \\u\(hex4(first))")
            }
            position += 2
            let second = try parseHex4()
            guard (0xDC00...0xDFFF).contains(second) else {
                throw failure("UTF-16 high surrogate \\u\(hex4(first)) followed by \\u\(hex4(second))")
            }
            scalarValue = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        case 0xDC00...0xDFFF:
            throw failure("unpaired UTF-16 low surrogate \\u\(hex4(first))")
        default:
            scalarValue = first
        }
        text.append(contentsOf: String(Character(Unicode.Scalar(scalarValue)!)).utf8)
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw failure("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("invalid hex digit \(describeCurrent()) in a \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    // MARK: Numbers and literals

    private mutating func parseNumber() throws -> JSONValue {
        let start = position
        var isInteger = true
        if peek(UInt8(ascii: "-")) { position += 1 }
        if peek(UInt8(ascii: "0")) {
            position += 1
        } else {
            guard skipDigits() > 0 else { throw failure("expected a digit, found \(describeCurrent())") }
        }
        if peek(UInt8(ascii: ".")) {
            isInteger = false
            position += 1
            guard skipDigits() > 0 else { throw failure("expected a digit after '.', found \(describeCurrent())") }
        }
        if peek(UInt8(ascii: "e")) || peek(UInt8(ascii: "E")) {
            isInteger = false
            position += 1
            if peek(UInt8(ascii: "+")) || peek(UInt8(ascii: "-")) { position += 1 }
            guard skipDigits() > 0 else { throw failure("expected a digit in the exponent, found \(describeCurrent())") }
        }
        let literal = String(decoding: bytes[start..<position], as: UTF8.self)
        if isInteger, let value = Int(literal) { return .integer(value) }
        guard let value = Double(literal), value.isFinite else {
            throw JSONParseError(offset: start, reason: "number \(literal) is out of range")
        }
        return .number(value)
    }

    /// Advances past ASCII digits and returns how many there were.
    private mutating func skipDigits() -> Int {
        let start = position
        while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
            position += 1
        }
        return position - start
    }

    private mutating func expectLiteral(_ literal: StaticString) throws {
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        guard position + expected.count <= bytes.count,
              expected.indices.allSatisfy({ bytes[position + $0] == expected[$0] }) else {
            throw failure("invalid literal, expected \(literal)")
        }
        position += expected.count
    }

    // MARK: Helpers

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private func peek(_ byte: UInt8) -> Bool {
        position < bytes.count && bytes[position] == byte
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws {
        guard peek(byte) else { throw failure("unexpected \(describeCurrent()), expected \(what)") }
        position += 1
    }

    private func failure(_ reason: String) -> JSONParseError {
        JSONParseError(offset: position, reason: reason)
    }

    private func describeCurrent() -> String {
        position < bytes.count ? describe(bytes[position]) : "end of text"
    }

    private func describe(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte \(hexByte(byte))"
    }

    private func hexByte(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return "0x\(digits[Int(byte >> 4)])\(digits[Int(byte & 0xF)])"
    }

    private func hex4(_ value: UInt32) -> String {
        let digits = Array("0123456789ABCDEF")
        return (0..<4).reversed().map { String(digits[Int((value >> (4 * UInt32($0))) & 0xF)]) }.joined()
    }
}
