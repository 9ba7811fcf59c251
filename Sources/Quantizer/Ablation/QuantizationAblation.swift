import CPUBackend

/// The SVDQuant paper's ablation on one layer (synthetic, or a real model layer with recorded activations): plain RTN W4A4, smoothing only, low-rank only, and both
/// (SVDQuant), measured as the relative output error on held-out activations through `W4A4RuntimeSimulation`.
public enum QuantizationAblation {
    public enum Method: String, Sendable, CaseIterable {
        case rtn = "RTN"
        case smoothingOnly = "smoothing only"
        case lowRankOnly = "low-rank only"
        case svdQuant = "SVDQuant"
    }

    /// One measured combination.
    public struct Result: Sendable, Equatable {
        public let format: W4A4Format
        /// The low-rank rank (0 for methods without a branch).
        public let rank: Int
        public let method: Method
        /// ‖y_q − y‖_F / ‖y‖_F on the evaluation rows, y = x·Wᵀ + b.
        public let relativeError: Double
        /// Wall-clock seconds the quantization took.
        public let seconds: Double
    }

    /// Quantizes `layer` with each method, for each format and rank, and measures the held-out error.
    /// - Parameters:
    ///   - base: settings other than format, rank and smoothing (e.g. grid size, low-rank rounds).
    ///   - progress: called after each measured combination.
    public static func run(
        layer: AblationLayer, formats: [W4A4Format] = W4A4Format.allCases, ranks: [Int] = [16, 32, 64],
        base: SVDQuantConfiguration = SVDQuantConfiguration(format: .int4),
        linearAlgebra: any DenseLinearAlgebra = DenseLinearAlgebraProvider.preferred(),
        progress: (Result) -> Void = { _ in }
    ) throws -> [Result] {
        let reference = referenceOutput(layer)
        var results: [Result] = []
        func measure(_ format: W4A4Format, _ rank: Int, _ method: Method) throws {
            var configuration = base
            configuration.format = format
            configuration.rank = method == .rtn || method == .smoothingOnly ? 0 : rank
            configuration.smoothing = method == .smoothingOnly || method == .svdQuant
            let input = W4A4LayerInput(
                name: layer.name, weight: layer.weight, outFeatures: layer.outFeatures, inFeatures: layer.inFeatures,
                bias: layer.bias, calibration: CalibrationActivations(values: layer.calibration, width: layer.inFeatures),
                inputKind: layer.inputKind)
            let start = ContinuousClock.now
            let quantized = try SVDQuantizer.quantize(input, configuration: configuration, linearAlgebra: linearAlgebra)
            let elapsed = ContinuousClock.now - start
            let output = try W4A4RuntimeSimulation.output(of: quantized, input: layer.evaluation, rows: layer.evaluationRows)
            let result = Result(
                format: format, rank: configuration.rank, method: method,
                relativeError: relativeDifference(output, reference),
                seconds: elapsed.seconds)
            results.append(result)
            progress(result)
        }
        for format in formats {
            try measure(format, 0, .rtn)
            try measure(format, 0, .smoothingOnly)
            for rank in ranks {
                try measure(format, rank, .lowRankOnly)
                try measure(format, rank, .svdQuant)
            }
        }
        return results
    }

    /// A Markdown table: one line per (format, rank) with the four methods' errors and SVDQuant / RTN.
    public static func table(_ results: [Result]) -> String {
        func error(_ format: W4A4Format, _ method: Method, _ rank: Int) -> Double? {
            results.first { $0.format == format && $0.method == method && $0.rank == rank }?.relativeError
        }
        func cell(_ value: Double?) -> String { value.map { formatted($0) } ?? "–" }
        var lines = [
            "| format | rank | RTN | smoothing only | low-rank only | SVDQuant | SVDQuant / RTN |",
            "|---|---|---|---|---|---|---|",
        ]
        var formatsSeen: [W4A4Format] = []
        for result in results where !formatsSeen.contains(result.format) { formatsSeen.append(result.format) }
        for format in formatsSeen {
            let ranks = results.filter { $0.format == format && $0.method == .svdQuant }.map(\.rank)
            for rank in ranks {
                let rtn = error(format, .rtn, 0), svdQuant = error(format, .svdQuant, rank)
                let ratio = rtn.flatMap { rtn in svdQuant.map { $0 / rtn } }
                lines.append("| \(format) | \(rank) | \(cell(rtn)) | \(cell(error(format, .smoothingOnly, 0))) | "
                    + "\(cell(error(format, .lowRankOnly, rank))) | \(cell(svdQuant)) | \(cell(ratio)) |")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// `x·Wᵀ + b` on the evaluation rows.
    private static func referenceOutput(_ layer: AblationLayer) -> [Float] {
        var output = Matmul.multiplyTransposed(
            layer.evaluation, layer.weight, m: layer.evaluationRows, n: layer.outFeatures, k: layer.inFeatures)
        for index in output.indices { output[index] += layer.bias[index % layer.outFeatures] }
        return output
    }

    /// `value` with three significant digits, in plain decimal notation (no Foundation formatter).
    public static func formatted(_ value: Double) -> String {
        guard value.isFinite, value > 0 else { return "\(value)" }
        var scaled = value, decimals = 0
        while scaled < 100, decimals < 15 {
            scaled *= 10
            decimals += 1
        }
        let digits = Int(scaled.rounded())
        var divisor = 1
        for _ in 0..<decimals { divisor *= 10 }
        guard decimals > 0 else { return String(digits) }
        let fraction = String(digits % divisor)
        return "\(digits / divisor)." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }
}
