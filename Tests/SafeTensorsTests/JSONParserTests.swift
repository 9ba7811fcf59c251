import Testing
@testable import SafeTensors

private func parse(_ text: String) throws -> JSONValue {
    try JSONValue.parse(Array(text.utf8))
}

private func parseError(_ text: String) -> JSONParseError? {
    do {
        _ = try JSONValue.parse(Array(text.utf8))
        return nil
    } catch {
        return error as? JSONParseError
    }
}

@Test func parsesNestedValuesKeepingMemberOrder() throws {
    let value = try parse(#" { "b" : [1, -2, 3.5, true, false, null], "a": {"x": "y"} } "#)
    #expect(value == .object([
        JSONMember("b", .array([.integer(1), .integer(-2), .number(3.5), .bool(true), .bool(false), .null])),
        JSONMember("a", .object([JSONMember("x", .string("y"))])),
    ]))
    #expect(value["a"]?["x"]?.stringValue == "y")
}

@Test func decodesEscapesAndSurrogatePairs() throws {
    let value = try parse(#""q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 é""#)
    #expect(value == .string("q\" b\\ s/ \u{8}\u{C}\n\r\t é 😀 é"))
}

@Test func keepsIntegersExactAndOtherNumbersAsDoubles() throws {
    #expect(try parse("9223372036854775807") == .integer(Int.max))
    #expect(try parse("-9223372036854775808") == .integer(Int.min))
    #expect(try parse("9223372036854775808") == .number(9_223_372_036_854_775_808))
    #expect(try parse("-0") == .integer(0))
    #expect(try parse("1e3") == .number(1000))
    #expect(try parse("0.25E-1") == .number(0.025))
}

@Test(arguments: [
    ("", "unexpected end of text"),
    ("[1,]", "unexpected ']', expected a value"),
    ("{\"a\":1,}", "unexpected '}', expected a string key"),
    ("01", "unexpected '1' after the JSON value"),
    ("1.", "expected a digit after '.'"),
    ("-", "expected a digit"),
    ("1e+", "expected a digit in the exponent"),
    ("\"a\u{1}\"", "control character 0x01 inside a string must be escaped"),
    ("\"\\x\"", "invalid escape"),
    ("\"\\ud800\"", "unpaired UTF-16 high surrogate"),
    ("\"\\udc00\"", "unpaired UTF-16 low surrogate"),
    ("\"\\ud800\\u0041\"", "followed by"),
    ("\"\\u12G4\"", "invalid hex digit"),
    ("\"abc", "unterminated string"),
    ("tru", "invalid literal"),
    ("NaN", "expected a value"),
    ("1e400", "out of range"),
    ("{\"a\" 1}", "expected ':'"),
    ("[1 2]", "expected ',' or ']'"),
    ("{} {}", "after the JSON value"),
])
func rejectsMalformedText(text: String, reason: String) {
    let error = parseError(text)
    #expect(error?.reason.contains(reason) == true, "\(String(describing: error))")
}

@Test func rejectsMalformedUTF8InStrings() {
    for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22]] {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(bytes) }
    }
}

@Test func rejectsDuplicateKeysAndReportsTheirDepth() {
    let top = parseError(#"{"a": 1, "b": 2, "a": 3}"#)
    #expect(top?.duplicateKey?.key == "a")
    #expect(top?.duplicateKey?.depth == 1)
    #expect(top?.offset == 17)
    let nested = parseError(#"{"a": {"k": 1, "k": 2}}"#)
    #expect(nested?.duplicateKey?.key == "k")
    #expect(nested?.duplicateKey?.depth == 2)
}

@Test func keysDifferingOnlyInNormalizationAreDistinct() throws {
    let value = try parse("{\"\u{E9}\": 1, \"e\u{301}\": 2}")
    #expect(value.objectMembers?.count == 2)
}

@Test func limitsNestingDepthWithoutRecursingUnboundedly() throws {
    let limit = JSONParser.maximumDepth
    _ = try parse(String(repeating: "[", count: limit) + String(repeating: "]", count: limit))
    #expect(parseError(String(repeating: "[", count: limit + 1) + String(repeating: "]", count: limit + 1))?
        .reason.contains("nested deeper") == true)
    #expect(parseError(String(repeating: "[{\"a\":", count: 200_000))?.reason.contains("nested deeper") == true)
}

@Test func serializesCompactlyWithSerdeEscapes() {
    let value: JSONValue = .object([
        JSONMember("s", .string("\"\\\u{8}\u{C}\n\r\t\u{1}\u{1F}\u{7F}é/")),
        JSONMember("n", .array([.integer(-3), .number(0.5), .null, .bool(true)])),
        JSONMember("e", .object([])),
    ])
    #expect(value.serialized() == #"{"s":"\"\\\b\f\n\r\t\u0001\u001f"# + "\u{7F}é/" + #"","n":[-3,0.5,null,true],"e":{}}"#)
}

@Test func serializedTextParsesBackToTheSameValue() throws {
    let value: JSONValue = .object([
        JSONMember("list", .array([.integer(1), .string("two\u{0}"), .object([JSONMember("three", .number(3.25))])])),
        JSONMember("emoji", .string("😀")),
    ])
    #expect(try JSONValue.parse(Array(value.serialized().utf8)) == value)
    #expect(try JSONValue.parse(Array(value.serialized(pretty: true).utf8)) == value)
    #expect(JSONValue.object([JSONMember("a", .array([.integer(1)]))]).serialized(pretty: true) == "{\n  \"a\": [\n    1\n  ]\n}")
}
