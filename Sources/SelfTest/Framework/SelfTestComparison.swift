import CPUBackend
import NunchakuCore

/// A GPU output brought back to the host: its values as `Float`, and how many elements still hold the poison
/// pattern (never written by the kernel) or are NaN/infinite.
public struct SelfTestOutput: Sendable {
    public let shape: [Int]
    public let values: [Float]
    /// Elements whose bits are still the poison pattern (all ones: a NaN no arithmetic produces).
    public let unwrittenElements: Int
    /// Elements that are NaN or infinite, not counting unwritten ones.
    public let nonFiniteElements: Int

    /// Decodes `tensor` (f32, bf16 or f16), counting poison and non-finite elements.
    /// - Throws: `NunchakuError.dtypeMismatch` for other dtypes.
    public init(_ tensor: Tensor) throws {
        let count = tensor.elementCount
        var values = [Float](repeating: 0, count: count)
        let chunk = 1 << 16
        let chunks = (count + chunk - 1) / chunk
        var unwritten = [Int](repeating: 0, count: chunks)
        var nonFinite = [Int](repeating: 0, count: chunks)
        let dtype = tensor.dtype
        guard [.f32, .bf16, .f16].contains(dtype) else {
            throw NunchakuError.dtypeMismatch(context: "self-test output", expected: [.f32, .bf16, .f16], actual: dtype)
        }
        tensor.withUnsafeBytes { bytes in
            values.withUnsafeMutableBufferPointer { values in
                unwritten.withUnsafeMutableBufferPointer { unwritten in
                    nonFinite.withUnsafeMutableBufferPointer { nonFinite in
                        parallelFor(chunks) { index in
                            for element in (index * chunk)..<min(count, (index + 1) * chunk) {
                                let value: Float
                                let poisoned: Bool
                                switch dtype {
                                case .f32:
                                    let bits = bytes.loadUnaligned(fromByteOffset: element * 4, as: UInt32.self)
                                    poisoned = bits == SelfTestPoison.word
                                    value = Float(bitPattern: bits)
                                case .bf16:
                                    let bits = bytes.loadUnaligned(fromByteOffset: element * 2, as: UInt16.self)
                                    poisoned = bits == SelfTestPoison.halfWord
                                    value = FloatFormats.float(bf16: bits)
                                default:
                                    let bits = bytes.loadUnaligned(fromByteOffset: element * 2, as: UInt16.self)
                                    poisoned = bits == SelfTestPoison.halfWord
                                    value = FloatFormats.float(f16: bits)
                                }
                                values[element] = value
                                if poisoned {
                                    unwritten[index] += 1
                                } else if !value.isFinite {
                                    nonFinite[index] += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        shape = tensor.shape
        self.values = values
        unwrittenElements = unwritten.reduce(0, +)
        nonFiniteElements = nonFinite.reduce(0, +)
    }
}

/// The poison written over every output before a kernel runs: all bits set. For f32, bf16 and f16 that is a
/// negative NaN with a full payload, which no arithmetic or rounding produces (they give canonical NaNs).
public enum SelfTestPoison {
    public static let byte: UInt8 = 0xFF
    public static let halfWord: UInt16 = 0xFFFF
    public static let word: UInt32 = 0xFFFF_FFFF
}

/// GPU outputs against CPU references: ‖gpu − cpu‖/‖cpu‖ over the compared elements (accumulated in `Double`), the
/// largest absolute difference, and the poison/NaN counts over every output element.
public struct SelfTestComparison: Sendable, Codable, Equatable {
    /// Elements compared with the CPU.
    public private(set) var comparedElements = 0
    /// Output elements checked for poison and NaN (all of them).
    public private(set) var outputElements = 0
    public private(set) var unwrittenElements = 0
    public private(set) var nonFiniteElements = 0
    public private(set) var maxAbsoluteError = 0.0
    private var squaredDifference = 0.0
    private var squaredReference = 0.0

    public init() {}

    /// ‖gpu − cpu‖/‖cpu‖; 0 when both are zero, infinite when only the reference is; NaN when a compared GPU
    /// value is NaN.
    public var relativeError: Double {
        if squaredReference == 0 { return squaredDifference == 0 ? 0 : .infinity }
        return (squaredDifference / squaredReference).squareRoot()
    }

    /// Compares every element of `output` with `reference` (same count, row-major).
    /// - Throws: when the counts differ.
    public mutating func compare(_ output: SelfTestOutput, with reference: [Float]) throws {
        guard output.values.count == reference.count else {
            throw NunchakuError.invalidArgument(
                context: "self-test comparison", reason: "GPU output has \(output.values.count) elements, the reference \(reference.count)")
        }
        count(output)
        accumulate(output.values[...], reference[...])
    }

    /// Compares the rows `rows` of `output` (viewed as rows of `width` elements) with `reference`, which holds
    /// just those rows in the same order. Every element of `output` is still checked for poison and NaN.
    /// - Throws: when the sizes do not fit.
    public mutating func compare(_ output: SelfTestOutput, rows: [Int], width: Int, with reference: [Float]) throws {
        guard width > 0, output.values.count % width == 0, reference.count == rows.count * width,
              rows.allSatisfy({ $0 >= 0 && ($0 + 1) * width <= output.values.count }) else {
            throw NunchakuError.invalidArgument(
                context: "self-test comparison",
                reason: "\(rows.count) rows of \(width) do not fit a GPU output of \(output.values.count) and a reference of \(reference.count)")
        }
        count(output)
        for (index, row) in rows.enumerated() {
            accumulate(output.values[(row * width)..<((row + 1) * width)], reference[(index * width)..<((index + 1) * width)])
        }
    }

    /// Poison and NaN counts of `output`, without comparing values (for outputs compared another way).
    public mutating func count(_ output: SelfTestOutput) {
        outputElements += output.values.count
        unwrittenElements += output.unwrittenElements
        nonFiniteElements += output.nonFiniteElements
    }

    private mutating func accumulate(_ gpu: ArraySlice<Float>, _ reference: ArraySlice<Float>) {
        var difference = 0.0, norm = 0.0, largest = maxAbsoluteError
        for (x, y) in zip(gpu, reference) {
            let delta = Double(x) - Double(y)
            difference += delta * delta
            norm += Double(y) * Double(y)
            // NaN must not hide behind max(): record it as an infinite error.
            largest = delta.isNaN ? .infinity : max(largest, abs(delta))
        }
        squaredDifference += difference
        squaredReference += norm
        maxAbsoluteError = largest
        comparedElements += gpu.count
    }
}
