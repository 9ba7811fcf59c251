/// The plain-text table `nunchaku selftest` prints: one row per case, then a summary line.
public enum SelfTestTable {
    /// Column titles, in order.
    static let titles = ["status", "kernel", "dtype", "shape", "rel err", "tol", "max abs", "GPU ms", "TFLOP/s", "GB/s", "note"]

    /// The whole table for `report`.
    public static func render(_ report: SelfTestReport) -> String {
        var lines = [header()]
        lines += report.results.map(row)
        lines.append(summary(report))
        return lines.joined(separator: "\n")
    }

    /// The header line (printed once before the rows stream in).
    public static func header() -> String {
        line(titles)
    }

    /// One case as a table line.
    public static func row(_ result: SelfTestResult) -> String {
        let comparison = result.comparison
        return line([
            result.status == .passed ? "ok" : result.status == .failed ? "FAIL" : "skip",
            result.kernel,
            result.dtype,
            result.shape,
            comparison.map { scientific($0.relativeError) } ?? "-",
            scientific(result.tolerance),
            comparison.map { scientific($0.maxAbsoluteError) } ?? "-",
            result.milliseconds.map { fixed($0, digits: 3) } ?? "-",
            result.teraflopsPerSecond.map { fixed($0, digits: 1) } ?? "-",
            result.gigabytesPerSecond.map { fixed($0, digits: 0) } ?? "-",
            result.message ?? "",
        ])
    }

    /// `N passed, N failed, N skipped of N cases in S s on DEVICE (seed S)`.
    public static func summary(_ report: SelfTestReport) -> String {
        "\(report.passedCount) passed, \(report.failedCount) failed, \(report.skippedCount) skipped of \(report.results.count) "
            + "cases in \(fixed(report.seconds, digits: 1)) s on \(report.device) (seed \(report.baseSeed))"
    }

    /// Fixed column widths; the last column (the note) is free.
    static let widths = [4, 18, 5, 36, 9, 7, 9, 8, 7, 5]

    static func line(_ cells: [String]) -> String {
        var text = ""
        for (index, cell) in cells.enumerated() {
            if index < widths.count {
                let numeric = index >= 4
                let padding = String(repeating: " ", count: max(0, widths[index] - cell.count))
                text += (numeric ? padding + cell : cell + padding) + " "
            } else {
                text += cell
            }
        }
        return String(text.reversed().drop { $0 == " " }.reversed())
    }

    /// `1.23e-03` style, `0` for zero, and `inf`/`nan` as such.
    public static func scientific(_ value: Double) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : "inf" }
        if value == 0 { return "0" }
        var exponent = Int((abs(value)).log10Floor)
        var mantissa = value / pow10(exponent)
        if abs(mantissa) >= 9.995 {
            exponent += 1
            mantissa /= 10
        }
        let sign = exponent < 0 ? "-" : "+"
        let digits = abs(exponent) < 10 ? "0\(abs(exponent))" : "\(abs(exponent))"
        return "\(fixed(mantissa, digits: 2))e\(sign)\(digits)"
    }

    /// `value` with `digits` decimals (rounded half away from zero).
    public static func fixed(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : "inf" }
        let scale = pow10(digits)
        let scaled = (abs(value) * scale).rounded()
        let whole = Int(scaled / scale)
        let fraction = Int(scaled - Double(whole) * scale)
        let sign = value < 0 && scaled > 0 ? "-" : ""
        guard digits > 0 else { return "\(sign)\(whole)" }
        let fractionText = String(fraction)
        return "\(sign)\(whole).\(String(repeating: "0", count: digits - fractionText.count))\(fractionText)"
    }

    private static func pow10(_ exponent: Int) -> Double {
        var result = 1.0
        for _ in 0..<abs(exponent) { result *= 10 }
        return exponent < 0 ? 1 / result : result
    }
}

private extension Double {
    /// ⌊log₁₀ self⌋ for a positive finite value, by counting decades (no Foundation needed).
    var log10Floor: Int {
        var exponent = 0
        var value = self
        while value >= 10 { value /= 10; exponent += 1 }
        while value < 1 { value *= 10; exponent -= 1 }
        return exponent
    }
}
