/// The per-prompt difference of two variants' adherence scores on the same prompts and seeds: its mean, the
/// standard error of that mean (sample standard deviation / √n), and how many prompts scored differently at all.
/// A mean within about two standard errors of zero does not separate the variants.
public struct PairedDifference: Sendable, Codable, Equatable {
    public let mean: Double
    public let standardError: Double
    public let changedPrompts: Int

    /// `scores[i] − reference[i]` over the prompts both have (the shorter length).
    public init(_ scores: [Double], reference: [Double]) {
        let differences = zip(scores, reference).map { $0 - $1 }
        let count = Double(differences.count)
        let mean = differences.isEmpty ? 0 : differences.reduce(0, +) / count
        let squares = differences.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        self.mean = mean
        standardError = differences.count < 2 ? 0 : (squares / (count - 1)).squareRoot() / count.squareRoot()
        changedPrompts = differences.filter { $0 != 0 }.count
    }

    /// `+1.1 ± 0.8 (10)`: mean ± standard error, and in brackets the prompts that changed.
    public var text: String {
        "\(mean >= 0 ? "+" : "")\(String(format: "%.1f", mean)) ± \(String(format: "%.1f", standardError)) (\(changedPrompts))"
    }
}
