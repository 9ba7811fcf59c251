/// One thing wrong with a checkpoint tensor, named as the file names it.
public enum TensorProblem: Sendable, Hashable, CustomStringConvertible {
    /// A tensor the layer (or the quantization config's target list) needs is not in the checkpoint.
    case missing(tensor: String)
    /// A tensor inside a quantized layer that its format does not have.
    case unexpected(tensor: String)
    case shape(tensor: String, expected: [Int], actual: [Int])
    case dtype(tensor: String, expected: [String], actual: String)
    /// Anything else: a dimension that is not a multiple of the kernel tile, a disagreement with the config.
    case invalid(tensor: String, reason: String)

    public var tensor: String {
        switch self {
        case let .missing(tensor), let .unexpected(tensor), let .shape(tensor, _, _), let .dtype(tensor, _, _),
             let .invalid(tensor, _):
            tensor
        }
    }

    public var description: String {
        switch self {
        case let .missing(tensor): "\(tensor): missing"
        case let .unexpected(tensor): "\(tensor): unexpected"
        case let .shape(tensor, expected, actual): "\(tensor): shape \(actual), expected \(expected)"
        case let .dtype(tensor, expected, actual): "\(tensor): dtype \(actual), expected \(expected.joined(separator: " or "))"
        case let .invalid(tensor, reason): "\(tensor): \(reason)"
        }
    }
}

/// Why an SVDQuant checkpoint cannot be opened or converted.
public enum SVDQuantCheckpointError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The checkpoint's tensors do not form the layers its format and config describe; every problem is listed.
    case invalidTensors(source: String, problems: [TensorProblem])
    /// The checkpoint is not one of the SVDQuant formats (`format` says what it is).
    case notSVDQuant(source: String, format: String)
    /// A config (metadata entry or config.json) is malformed or contradicts itself.
    case invalidConfig(source: String, reason: String)
    /// No quantized layer or dense tensor has this name.
    case noSuchLayer(source: String, name: String)
    /// A conversion the target format cannot express.
    case unsupportedConversion(layer: String, reason: String)
    /// The output path cannot be used.
    case invalidOutput(path: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidTensors(source, problems):
            "\(source): \(problems.count) tensor problem\(problems.count == 1 ? "" : "s"):\n"
                + problems.map { "  \($0)" }.joined(separator: "\n")
        case let .notSVDQuant(source, format): "\(source): not an SVDQuant checkpoint (\(format))"
        case let .invalidConfig(source, reason): "\(source): \(reason)"
        case let .noSuchLayer(source, name): "\(source): no layer or tensor named \(name)"
        case let .unsupportedConversion(layer, reason): "\(layer): \(reason)"
        case let .invalidOutput(path, reason): "\(path): \(reason)"
        }
    }
}
