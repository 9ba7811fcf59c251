/// Why a LoRA could not be read or applied. Every problem found is listed, each naming the keys or layers involved;
/// nothing is applied when there is one.
public struct LoRAError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The LoRA file (or the name given to in-memory weights).
    public let file: String
    /// One line per problem, each naming the keys, modules or layers it is about.
    public let problems: [String]

    public init(file: String, problems: [String]) {
        self.file = file
        self.problems = problems
    }

    public var description: String {
        problems.count == 1
            ? "\(file): \(problems[0])"
            : "\(file): \(problems.count) problems:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}
