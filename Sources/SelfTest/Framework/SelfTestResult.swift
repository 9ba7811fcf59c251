/// The verdict on one case.
public struct SelfTestResult: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable {
        case passed, failed, skipped
    }

    public let kernel: String
    public let dtype: String
    public let shape: String
    public let tolerance: Double
    public let status: Status
    /// The comparison, when the body got that far.
    public let comparison: SelfTestComparison?
    /// Median GPU milliseconds of one launch, when timed.
    public let milliseconds: Double?
    public let teraflopsPerSecond: Double?
    public let gigabytesPerSecond: Double?
    /// Wall time of the whole case (inputs, GPU, CPU reference).
    public let seconds: Double
    public let seed: UInt64
    /// Why it failed or was skipped, or the case's own note.
    public let message: String?

    /// `kernel dtype shape`.
    public var name: String { "\(kernel) \(dtype) \(shape)" }

    /// Judges `outcome` against `testCase`'s tolerance: it fails on any unwritten or non-finite output element, a
    /// comparison of no elements, or an error that is not finite or exceeds the tolerance.
    init(testCase: SelfTestCase, outcome: SelfTestOutcome, seconds: Double, seed: UInt64) {
        let comparison = outcome.comparison
        var problems: [String] = []
        if comparison.comparedElements == 0 { problems.append("nothing was compared") }
        if comparison.unwrittenElements > 0 {
            problems.append("\(comparison.unwrittenElements) of \(comparison.outputElements) output elements not written")
        }
        if comparison.nonFiniteElements > 0 {
            problems.append("\(comparison.nonFiniteElements) output elements are NaN or infinite")
        }
        let error = comparison.relativeError
        if !error.isFinite {
            problems.append("relative error is \(error)")
        } else if error > testCase.tolerance {
            problems.append("relative error \(SelfTestTable.scientific(error)) exceeds \(SelfTestTable.scientific(testCase.tolerance))")
        }
        self.init(testCase: testCase, status: problems.isEmpty ? .passed : .failed, comparison: comparison,
                  milliseconds: outcome.milliseconds,
                  teraflopsPerSecond: Self.rate(outcome.flops, outcome.milliseconds, scale: 1e12),
                  gigabytesPerSecond: Self.rate(outcome.bytes, outcome.milliseconds, scale: 1e9),
                  seconds: seconds, seed: seed,
                  message: problems.isEmpty ? outcome.note : problems.joined(separator: "; "))
    }

    /// A case that threw: skipped for `SelfTestSkip`, failed for anything else.
    init(testCase: SelfTestCase, error: Error, seconds: Double, seed: UInt64) {
        let skipped = error is SelfTestSkip
        self.init(testCase: testCase, status: skipped ? .skipped : .failed, comparison: nil, milliseconds: nil,
                  teraflopsPerSecond: nil, gigabytesPerSecond: nil, seconds: seconds, seed: seed,
                  message: String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " "))
    }

    private init(testCase: SelfTestCase, status: Status, comparison: SelfTestComparison?, milliseconds: Double?,
                 teraflopsPerSecond: Double?, gigabytesPerSecond: Double?, seconds: Double, seed: UInt64, message: String?) {
        kernel = testCase.kernel
        dtype = testCase.dtype.rawValue
        shape = testCase.shape
        tolerance = testCase.tolerance
        self.status = status
        self.comparison = comparison
        self.milliseconds = milliseconds
        self.teraflopsPerSecond = teraflopsPerSecond
        self.gigabytesPerSecond = gigabytesPerSecond
        self.seconds = seconds
        self.seed = seed
        self.message = message
    }

    private static func rate(_ amount: Double?, _ milliseconds: Double?, scale: Double) -> Double? {
        guard let amount, let milliseconds, milliseconds > 0 else { return nil }
        return amount / (milliseconds * 1e-3) / scale
    }
}

/// A whole run: the device, every case's result, and the wall time.
public struct SelfTestReport: Sendable, Codable {
    public let device: String
    public let baseSeed: UInt64
    public let results: [SelfTestResult]
    public let seconds: Double

    public var passedCount: Int { results.filter { $0.status == .passed }.count }
    public var failedCount: Int { results.filter { $0.status == .failed }.count }
    public var skippedCount: Int { results.filter { $0.status == .skipped }.count }
    /// True when no case failed and at least one ran.
    public var succeeded: Bool { failedCount == 0 && passedCount > 0 }
}
