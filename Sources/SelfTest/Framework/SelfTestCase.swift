import NunchakuCore

/// One GPU kernel check: a name, the shape and dtype it runs at, the tolerance on ‖gpu − cpu‖/‖cpu‖, and the body
/// that runs the kernel on fresh random inputs and compares with the CPU reference.
///
/// The body gets a `SelfTestEnvironment` (the GPU, a freshly seeded random source, helpers for poisoned outputs,
/// comparisons and timing) and returns what it measured; the runner turns that into a pass or a failure.
/// Throwing `SelfTestSkip` reports the case as skipped (an optional library such as cuBLASLt is absent); any other
/// error fails the case with the error's text.
public struct SelfTestCase: Sendable {
    /// The kernel or operation checked, e.g. `layernorm` or `gemm.mma`; `--filter` matches it.
    public let kernel: String
    /// The element type of the activations.
    public let dtype: DType
    /// The shape in words, e.g. `M=4608 N=3072 K=12288` or `[1, 4608, 3072]`.
    public let shape: String
    /// The largest ‖gpu − cpu‖/‖cpu‖ that passes.
    public let tolerance: Double
    /// Runs the kernel and compares it with the CPU.
    public let body: @Sendable (SelfTestEnvironment) throws -> SelfTestOutcome

    public init(kernel: String, dtype: DType, shape: String, tolerance: Double,
                body: @escaping @Sendable (SelfTestEnvironment) throws -> SelfTestOutcome) {
        self.kernel = kernel
        self.dtype = dtype
        self.shape = shape
        self.tolerance = tolerance
        self.body = body
    }

    /// `kernel dtype shape`: unique within the catalog, and what `--filter` searches.
    public var name: String { "\(kernel) \(dtype) \(shape)" }

    /// Whether `filter` selects this case: every space-separated word of it (case-insensitive) must begin one of the
    /// name's words (split at spaces and `=[],.+`), so `f16` does not select `bf16` and `gemm` selects `gemm.mma`;
    /// a word that itself holds one of those separators (`gemm.mma`, `M=4608`) must occur in the name as written.
    public func matches(_ filter: String) -> Bool {
        let separators = Set(" =[],.+")
        let lowered = name.lowercased()
        let words = lowered.split { separators.contains($0) }
        return filter.lowercased().split(separator: " ").allSatisfy { part in
            part.contains(where: { separators.contains($0) })
                ? lowered.contains(part)
                : words.contains { $0.hasPrefix(part) }
        }
    }
}

/// What a case measured: the comparison with the CPU and, optionally, the kernel's time and work.
public struct SelfTestOutcome: Sendable {
    /// GPU output against the CPU reference (every output element checked for poison and NaN).
    public var comparison: SelfTestComparison
    /// Median GPU time of one launch of the op, from device events after warm-up.
    public var milliseconds: Double?
    /// Floating-point operations one launch does (for TFLOP/s), or nil.
    public var flops: Double?
    /// Bytes one launch must read and write at the least (for GB/s), or nil.
    public var bytes: Double?
    /// Anything worth a remark in the table (the path taken, the rows compared).
    public var note: String?

    public init(comparison: SelfTestComparison, milliseconds: Double? = nil, flops: Double? = nil,
                bytes: Double? = nil, note: String? = nil) {
        self.comparison = comparison
        self.milliseconds = milliseconds
        self.flops = flops
        self.bytes = bytes
        self.note = note
    }
}

/// Thrown by a case body when the case cannot run here for a reason that is not a failure of the kernel
/// (an optional library such as cuBLASLt is missing). The reason is shown in the table.
public struct SelfTestSkip: Error, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
