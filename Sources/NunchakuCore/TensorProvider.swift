/// Anything that serves tensors by name: an in-memory dictionary, a safetensors file, a sharded checkpoint.
/// Model loaders read weights through this so they do not care where the bytes live.
public protocol TensorProvider {
    /// Every tensor name.
    var tensorNames: [String] { get }
    /// The tensor called `name`.
    /// - Throws: an error naming the tensor (and file, where there is one) when it is missing or unreadable.
    func tensor(named name: String) throws -> Tensor
}

extension TensorProvider {
    /// Whether a tensor called `name` exists.
    public func contains(_ name: String) -> Bool { tensorNames.contains(name) }
}

extension Dictionary: TensorProvider where Key == String, Value == Tensor {
    public var tensorNames: [String] { keys.sorted() }

    public func tensor(named name: String) throws -> Tensor {
        guard let tensor = self[name] else {
            throw NunchakuError.invalidArgument(context: name, reason: "no tensor with this name")
        }
        return tensor
    }
}
