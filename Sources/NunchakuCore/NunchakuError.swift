/// Errors shared by every module. Each case carries what a user needs to fix the problem:
/// the file, tensor or value, and what is wrong with it.
public enum NunchakuError: Error, Equatable, CustomStringConvertible {
    /// A file could not be opened, read, written or mapped.
    case io(path: String, reason: String)
    /// No shared library from `candidates` could be loaded.
    case libraryNotFound(candidates: [String], reason: String)
    /// A shared library lacks a symbol the engine needs.
    case symbolNotFound(library: String, symbol: String)
    /// A value passed to an operation is not acceptable; `context` names the operation or tensor.
    case invalidArgument(context: String, reason: String)
    /// A tensor's shape differs from what an operation needs.
    case shapeMismatch(context: String, expected: [Int], actual: [Int])
    /// A tensor's dtype differs from what an operation supports.
    case dtypeMismatch(context: String, expected: [DType], actual: DType)
    /// A feature that exists in the format but not (yet) in this engine.
    case unsupported(context: String, reason: String)

    public var description: String {
        switch self {
        case let .io(path, reason):
            "\(path): \(reason)"
        case let .libraryNotFound(candidates, reason):
            "could not load any of \(candidates.joined(separator: ", ")): \(reason)"
        case let .symbolNotFound(library, symbol):
            "\(library) has no symbol \(symbol)"
        case let .invalidArgument(context, reason):
            "\(context): \(reason)"
        case let .shapeMismatch(context, expected, actual):
            "\(context): expected shape \(expected), got \(actual)"
        case let .dtypeMismatch(context, expected, actual):
            "\(context): expected dtype \(expected.map(\.rawValue).joined(separator: " or ")), got \(actual)"
        case let .unsupported(context, reason):
            "\(context): \(reason)"
        }
    }
}
