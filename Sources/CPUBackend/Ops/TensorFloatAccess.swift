import NunchakuCore

/// The activation dtypes the CPU ops accept. Ops compute in `Float` (or `Double` where precision matters)
/// and round their output once to the dtype of their main input.
public let cpuActivationDTypes: [DType] = [.f32, .bf16, .f16]

extension Tensor {
    /// The elements as `Float`, in row-major order, for the floating dtypes the CPU ops take (f32, bf16, f16).
    /// Faster than `floats()` for the 16-bit kinds.
    /// - Throws: `NunchakuError.dtypeMismatch` naming `context` for any other dtype.
    public func floatValues(context: String) throws -> [Float] {
        switch dtype {
        case .f32:
            return floats()
        case .bf16:
            return withUnsafeBytes { raw in
                raw.bindMemory(to: UInt16.self).map { FloatFormats.float(bf16: $0) }
            }
        case .f16:
            return withUnsafeBytes { raw in
                raw.bindMemory(to: UInt16.self).map { FloatFormats.float(f16: $0) }
            }
        default:
            throw NunchakuError.dtypeMismatch(context: context, expected: cpuActivationDTypes, actual: dtype)
        }
    }

    /// A new tensor of `dtype` (f32, bf16 or f16) holding `values`, each rounded once to nearest even.
    public static func rounding(_ values: [Float], shape: [Int], to dtype: DType) -> Tensor {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        switch dtype {
        case .bf16, .f16:
            var result = Tensor(zeros: shape, dtype: dtype)
            result.withUnsafeMutableBytes { raw in
                let bits = raw.bindMemory(to: UInt16.self)
                if dtype == .bf16 {
                    for index in values.indices { bits[index] = FloatFormats.bf16Bits(values[index]) }
                } else {
                    for index in values.indices { bits[index] = FloatFormats.f16Bits(values[index]) }
                }
            }
            return result
        default:
            return Tensor(values, shape: shape, dtype: dtype)
        }
    }
}

/// Argument checks shared by the CPU ops; each names the op and the operand.
enum OpCheck {
    /// Throws unless `tensor` has an activation dtype.
    static func activation(_ tensor: Tensor, _ context: String) throws {
        guard cpuActivationDTypes.contains(tensor.dtype) else {
            throw NunchakuError.dtypeMismatch(context: context, expected: cpuActivationDTypes, actual: tensor.dtype)
        }
    }

    /// Throws unless `tensor` has exactly `shape`.
    static func shape(_ tensor: Tensor, _ shape: [Int], _ context: String) throws {
        guard tensor.shape == shape else {
            throw NunchakuError.shapeMismatch(context: context, expected: shape, actual: tensor.shape)
        }
    }

    /// Throws unless `tensor` has `rank` dimensions.
    static func rank(_ tensor: Tensor, _ rank: Int, _ context: String) throws {
        guard tensor.rank == rank else {
            throw NunchakuError.invalidArgument(
                context: context, reason: "expected a rank-\(rank) tensor, got shape \(tensor.shape)")
        }
    }

    /// The size of the last dimension (throws for rank 0 or an empty last dimension).
    static func lastDimension(_ tensor: Tensor, _ context: String) throws -> Int {
        guard let last = tensor.shape.last, last > 0 else {
            throw NunchakuError.invalidArgument(context: context, reason: "needs a non-empty last dimension, got shape \(tensor.shape)")
        }
        return last
    }
}

/// Splits `rows` rows into chunks and runs `body(rowRange)` for each chunk on all cores.
/// Chunks touch disjoint rows, so `body` may write its rows through captured pointers.
func parallelRows(_ rows: Int, minimumRowsPerChunk: Int = 16, _ body: (Range<Int>) -> Void) {
    guard rows > 0 else { return }
    let chunkCount = max(1, min(rows / max(1, minimumRowsPerChunk), 4 * Environment.processorCount))
    let rowsPerChunk = (rows + chunkCount - 1) / chunkCount
    parallelFor(chunkCount) { chunk in
        let start = chunk * rowsPerChunk
        let end = min(rows, start + rowsPerChunk)
        if start < end { body(start..<end) }
    }
}
