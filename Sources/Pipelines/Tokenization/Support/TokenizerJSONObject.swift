import NunchakuCore
import SafeTensors

/// One JSON object of a `tokenizer.json` file, with typed accessors whose errors name the file, the member and
/// what is wrong with it.
struct TokenizerJSONObject {
    /// The members, in file order.
    let members: [JSONMember]
    /// Where the object lies: the file, then the member path (`tokenizer.json: pre_tokenizer.pretokenizers[1]`).
    let location: String

    init(_ value: JSONValue, location: String) throws {
        guard case let .object(members) = value else {
            throw NunchakuError.invalidArgument(context: location, reason: "expected an object, found \(value.kindDescription)")
        }
        self.members = members
        self.location = location
    }

    /// The value of `key`, nil when absent.
    subscript(key: String) -> JSONValue? {
        members.first { $0.key == key }?.value
    }

    /// The location of member `key`, for messages and nested objects.
    func location(of key: String) -> String {
        "\(location).\(key)"
    }

    /// The component's `type` member.
    var type: String {
        get throws { try string("type") }
    }

    func string(_ key: String) throws -> String {
        guard let text = try optionalString(key) else { throw missing(key, "a string") }
        return text
    }

    /// A string member that may be absent or null.
    func optionalString(_ key: String) throws -> String? {
        switch self[key] {
        case nil, .null?: return nil
        case let .string(text)?: return text
        case let other?: throw wrongKind(key, "a string", other)
        }
    }

    /// A boolean member; `fallback` when absent or null.
    func bool(_ key: String, default fallback: Bool) throws -> Bool {
        switch self[key] {
        case nil, .null?: return fallback
        case let .bool(flag)?: return flag
        case let other?: throw wrongKind(key, "a boolean", other)
        }
    }

    func int(_ key: String) throws -> Int {
        guard let value = try optionalInt(key) else { throw missing(key, "an integer") }
        return value
    }

    /// A non-negative integer member that may be absent or null.
    func optionalInt(_ key: String) throws -> Int? {
        switch self[key] {
        case nil, .null?: return nil
        case let .integer(value)? where value >= 0: return value
        case let other?: throw wrongKind(key, "a non-negative integer", other)
        }
    }

    func array(_ key: String) throws -> [JSONValue] {
        switch self[key] {
        case let .array(elements)?: return elements
        case nil, .null?: throw missing(key, "an array")
        case let other?: throw wrongKind(key, "an array", other)
        }
    }

    func object(_ key: String) throws -> TokenizerJSONObject {
        guard let value = self[key], value != .null else { throw missing(key, "an object") }
        return try TokenizerJSONObject(value, location: location(of: key))
    }

    /// An object member that may be absent or null.
    func optionalObject(_ key: String) throws -> TokenizerJSONObject? {
        guard let value = self[key], value != .null else { return nil }
        return try TokenizerJSONObject(value, location: location(of: key))
    }

    /// The objects of array member `key` (`normalizers`, `pretokenizers`, …).
    func objects(_ key: String) throws -> [TokenizerJSONObject] {
        try array(key).enumerated().map { index, element in
            try TokenizerJSONObject(element, location: "\(location(of: key))[\(index)]")
        }
    }

    /// An error for a value that is present but wrong.
    func invalid(_ key: String, _ reason: String) -> NunchakuError {
        .invalidArgument(context: location(of: key), reason: reason)
    }

    /// An error for a component `type` this engine does not implement, listing what it does.
    func unsupportedType(_ type: String, kind: String, supported: [String]) -> NunchakuError {
        .unsupported(
            context: location,
            reason: "\(kind) type \"\(type)\" is not supported (supported: \(supported.joined(separator: ", ")))")
    }

    private func missing(_ key: String, _ expected: String) -> NunchakuError {
        .invalidArgument(context: location(of: key), reason: "missing; expected \(expected)")
    }

    private func wrongKind(_ key: String, _ expected: String, _ found: JSONValue) -> NunchakuError {
        .invalidArgument(context: location(of: key), reason: "expected \(expected), found \(found.kindDescription)")
    }
}

extension JSONValue {
    /// The value as a `Double` when it is any JSON number.
    var numberValue: Double? {
        switch self {
        case let .integer(value): Double(value)
        case let .number(value): value
        default: nil
        }
    }
}
