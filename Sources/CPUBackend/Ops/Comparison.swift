import NunchakuCore

/// Measures of how far one result is from a reference (parity tests, self-tests, the CLI's `--compare`).
public enum Comparison {
    /// ‖a − b‖ / ‖b‖ over all elements, accumulated in `Double`; `a` and `b` must have the same count.
    public static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count, "compared arrays differ in length")
        var difference = 0.0, reference = 0.0
        for (x, y) in zip(a, b) {
            difference += (Double(x) - Double(y)) * (Double(x) - Double(y))
            reference += Double(y) * Double(y)
        }
        return (difference / max(reference, .leastNonzeroMagnitude)).squareRoot()
    }

    /// ‖a − b‖ / ‖b‖ of two tensors of one shape (any float dtypes).
    /// - Throws: `NunchakuError.shapeMismatch` when the shapes differ.
    public static func relativeError(_ a: Tensor, _ b: Tensor) throws -> Double {
        guard a.shape == b.shape else { throw NunchakuError.shapeMismatch(context: "relativeError", expected: b.shape, actual: a.shape) }
        return relativeError(a.floats(), b.floats())
    }
}
