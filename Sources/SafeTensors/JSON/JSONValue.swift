/// A JSON document as parsed by `JSONParser`: objects keep their members in file order.
///
/// Integers that fit in an `Int` are kept exactly (`integer`); every other number is a `Double`.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    /// The value of member `key` when this is an object holding it.
    public subscript(key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The text when this is a string.
    public var stringValue: String? {
        if case let .string(text) = self { return text }
        return nil
    }

    /// The value when this is an integer.
    public var intValue: Int? {
        if case let .integer(value) = self { return value }
        return nil
    }

    /// The elements when this is an array.
    public var arrayElements: [JSONValue]? {
        if case let .array(elements) = self { return elements }
        return nil
    }

    /// The members when this is an object.
    public var objectMembers: [JSONMember]? {
        if case let .object(members) = self { return members }
        return nil
    }

    /// A word for the value's kind, for error messages ("a string", "an object", …).
    public var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// Parses UTF-8 JSON text strictly (see `JSONParser`).
    /// - Throws: `JSONParseError` naming the byte offset and the problem.
    public static func parse(_ text: some Collection<UInt8>) throws -> JSONValue {
        try Array(text).withUnsafeBytes { try JSONParser.parse($0) }
    }
}

/// One member of a JSON object.
public struct JSONMember: Sendable, Equatable {
    public var key: String
    public var value: JSONValue

    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}

/// Why a JSON text was rejected, and the byte offset where the parser noticed.
public struct JSONParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Bytes from the start of the text.
    public let offset: Int
    public let reason: String
    /// For a duplicate object key: the key and the nesting depth of its object (1 = the top-level object).
    public let duplicateKey: (key: String, depth: Int)?

    init(offset: Int, reason: String, duplicateKey: (key: String, depth: Int)? = nil) {
        self.offset = offset
        self.reason = reason
        self.duplicateKey = duplicateKey
    }

    public var description: String { "byte \(offset): \(reason)" }

    public static func == (lhs: JSONParseError, rhs: JSONParseError) -> Bool {
        lhs.offset == rhs.offset && lhs.reason == rhs.reason
            && lhs.duplicateKey?.key == rhs.duplicateKey?.key && lhs.duplicateKey?.depth == rhs.duplicateKey?.depth
    }
}
