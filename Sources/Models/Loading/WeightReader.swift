import NunchakuCore

/// Reads a model's tensors by name from a `TensorProvider`, strictly: it remembers every tensor taken and every
/// problem met (missing, wrong shape, unusable dtype), hands out zero placeholders so loading can go on and find
/// all problems at once, and `finish()` then reports them together with the tensors nobody asked for.
///
/// One reader serves one model load; it is not shared between threads.
public final class WeightReader {
    /// The checkpoint's name in error messages (a path, or a description such as "weights").
    public let source: String
    private let provider: any TensorProvider
    private let available: Set<String>
    private var taken: Set<String> = []
    private var missing: [String] = []
    private var mismatched: [WeightLoadingError.Mismatch] = []
    private var unusable: [WeightLoadingError.Issue] = []

    /// A reader over `provider`; `source` names it in errors.
    public init(_ provider: any TensorProvider, source: String) {
        self.provider = provider
        self.source = source
        self.available = Set(provider.tensorNames)
    }

    /// The tensor `name`, which must have `shape` and, when `dtypes` is given, one of those dtypes.
    /// On any problem the problem is recorded and f32 zeros of `shape` stand in; `finish()` then throws.
    public func tensor(_ name: String, shape: [Int], dtypes: [DType]? = nil) -> Tensor {
        taken.insert(name)
        guard available.contains(name) else {
            missing.append(name)
            return Tensor(zeros: shape, dtype: .f32)
        }
        let tensor: Tensor
        do {
            tensor = try provider.tensor(named: name)
        } catch {
            unusable.append(.init(name: name, reason: "could not be read: \(error)"))
            return Tensor(zeros: shape, dtype: .f32)
        }
        guard tensor.shape == shape else {
            mismatched.append(.init(name: name, expected: shape, actual: tensor.shape))
            return Tensor(zeros: shape, dtype: .f32)
        }
        if let dtypes, !dtypes.contains(tensor.dtype) {
            unusable.append(.init(
                name: name, reason: "dtype \(tensor.dtype), expected \(dtypes.map(\.rawValue).joined(separator: " or "))"))
            return Tensor(zeros: shape, dtype: .f32)
        }
        return tensor
    }

    /// Whether the checkpoint has a tensor called `name` (does not count as taking it).
    public func contains(_ name: String) -> Bool { available.contains(name) }

    /// Takes the entry `name` whole, without reading it as a tensor (a quantized layer that its factory builds from
    /// the checkpoint). Returns false, and records it as missing, when the checkpoint has no such entry.
    public func claim(_ name: String) -> Bool {
        taken.insert(name)
        guard available.contains(name) else {
            missing.append(name)
            return false
        }
        return true
    }

    /// Records that `name` (a tensor or a layer) cannot be used, for `finish()` to report with the rest.
    public func reject(_ name: String, reason: String) {
        unusable.append(.init(name: name, reason: reason))
    }

    /// Throws a `WeightLoadingError` listing every missing, mis-shaped, unusable and unexpected (never taken) tensor,
    /// or returns when there is none.
    public func finish() throws {
        let unexpected = available.subtracting(taken).sorted()
        guard missing.isEmpty, mismatched.isEmpty, unusable.isEmpty, unexpected.isEmpty else {
            throw WeightLoadingError(
                source: source, missing: missing.sorted(), unexpected: unexpected,
                mismatched: mismatched.sorted { $0.name < $1.name }, unusable: unusable.sorted { $0.name < $1.name })
        }
    }
}

/// Everything wrong with a checkpoint's tensors for the model being built, listed by name.
public struct WeightLoadingError: Error, Equatable, CustomStringConvertible {
    /// A tensor whose shape differs from the one the model needs.
    public struct Mismatch: Equatable, Sendable {
        public let name: String
        public let expected: [Int]
        public let actual: [Int]
    }

    /// A tensor that exists but cannot be used (wrong dtype, unreadable).
    public struct Issue: Equatable, Sendable {
        public let name: String
        public let reason: String
    }

    /// The checkpoint (file path or description).
    public let source: String
    /// Tensors the model needs that the checkpoint lacks.
    public let missing: [String]
    /// Tensors in the checkpoint that the model does not use.
    public let unexpected: [String]
    /// Tensors of the wrong shape.
    public let mismatched: [Mismatch]
    /// Tensors of an unusable dtype or that could not be read.
    public let unusable: [Issue]

    public var description: String {
        var lines = ["\(source): the tensors do not fit the model"]
        if !missing.isEmpty { lines.append("missing (\(missing.count)): \(missing.joined(separator: ", "))") }
        if !unexpected.isEmpty { lines.append("unexpected (\(unexpected.count)): \(unexpected.joined(separator: ", "))") }
        for mismatch in mismatched {
            lines.append("wrong shape: \(mismatch.name) is \(mismatch.actual), expected \(mismatch.expected)")
        }
        for issue in unusable { lines.append("unusable: \(issue.name): \(issue.reason)") }
        return lines.joined(separator: "\n")
    }
}
