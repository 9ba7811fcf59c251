extension JSONValue {
    /// The value as JSON text.
    ///
    /// Compact output matches serde_json (the library behind Python's `safetensors`) byte for byte
    /// for everything a safetensors header holds: no spaces, members in stored order, and strings
    /// escaped as serde does (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as
    /// `\u00xx`, everything else verbatim UTF-8). `pretty` indents by two spaces, one member per line.
    public func serialized(pretty: Bool = false) -> String {
        var output: [UInt8] = []
        write(into: &output, pretty: pretty, indent: 0)
        return String(decoding: output, as: UTF8.self)
    }

    private func write(into output: inout [UInt8], pretty: Bool, indent: Int) {
        switch self {
        case .null: output.append(contentsOf: "null".utf8)
        case let .bool(value): output.append(contentsOf: (value ? "true" : "false").utf8)
        case let .integer(value): output.append(contentsOf: String(value).utf8)
        case let .number(value): output.append(contentsOf: (value.isFinite ? "\(value)" : "null").utf8)
        case let .string(text): Self.writeString(text, into: &output)
        case let .array(elements):
            writeContainer(open: "[", close: "]", count: elements.count, into: &output, pretty: pretty, indent: indent) {
                elements[$0].write(into: &$1, pretty: pretty, indent: indent + 1)
            }
        case let .object(members):
            writeContainer(open: "{", close: "}", count: members.count, into: &output, pretty: pretty, indent: indent) {
                Self.writeString(members[$0].key, into: &$1)
                $1.append(contentsOf: (pretty ? ": " : ":").utf8)
                members[$0].value.write(into: &$1, pretty: pretty, indent: indent + 1)
            }
        }
    }

    private func writeContainer(
        open: Character, close: Character, count: Int, into output: inout [UInt8], pretty: Bool, indent: Int,
        element: (Int, inout [UInt8]) -> Void
    ) {
        output.append(open.asciiValue!)
        for index in 0..<count {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            if pretty { Self.newline(into: &output, indent: indent + 1) }
            element(index, &output)
        }
        if pretty && count > 0 { Self.newline(into: &output, indent: indent) }
        output.append(close.asciiValue!)
    }

    private static func newline(into output: inout [UInt8], indent: Int) {
        output.append(0x0A)
        output.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * indent))
    }

    private static func writeString(_ text: String, into output: inout [UInt8]) {
        let hexDigits = Array("0123456789abcdef".utf8)
        output.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): output.append(contentsOf: #"\\"#.utf8)
            case 0x08: output.append(contentsOf: #"\b"#.utf8)
            case 0x0C: output.append(contentsOf: #"\f"#.utf8)
            case 0x0A: output.append(contentsOf: #"\n"#.utf8)
            case 0x0D: output.append(contentsOf: #"\r"#.utf8)
            case 0x09: output.append(contentsOf: #"\t"#.utf8)
            case 0x00..<0x20:
                output.append(contentsOf: #"\u00"#.utf8)
                output.append(hexDigits[Int(byte >> 4)])
                output.append(hexDigits[Int(byte & 0xF)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}
