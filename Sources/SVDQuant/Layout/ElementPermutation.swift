import CPUBackend
import NunchakuCore

/// Moves whole elements between a canonical row-major buffer and a permuted (packed) one.
enum ElementPermutation {
    enum Direction {
        /// canonical element `i` goes to packed position `index(i)`.
        case pack
        /// canonical element `i` comes from packed position `index(i)`.
        case unpack
    }

    /// A tensor of `shape`/`dtype` whose elements are those of `source` moved by `index` (a bijection on
    /// `0..<count` mapping canonical row-major positions to packed positions). Rows are spread over the cores.
    static func apply(
        _ source: Tensor, shape: [Int], dtype: DType, rows: Int, direction: Direction,
        index: (Int) -> Int
    ) -> Tensor {
        let width = dtype.bitWidth / 8
        precondition(width >= 1 && !dtype.isPacked4Bit, "element permutations move whole bytes")
        let count = shape.reduce(1, *)
        precondition(count % max(rows, 1) == 0, "rows must divide the element count")
        let perRow = count / max(rows, 1)
        var result = Tensor(zeros: shape, dtype: dtype)
        guard count > 0 else { return result }
        source.withUnsafeBytes { input in
            result.withUnsafeMutableBytes { output in
                let from = input.baseAddress!, to = output.baseAddress!
                parallelFor(rows) { row in
                    for element in (row * perRow)..<((row + 1) * perRow) {
                        let packed = index(element)
                        let (source, destination) = direction == .pack ? (element, packed) : (packed, element)
                        (to + destination * width).copyMemory(from: from + source * width, byteCount: width)
                    }
                }
            }
        }
        return result
    }
}

/// Shape and dtype checks shared by the layout conversions; errors name the tensor.
enum LayoutCheck {
    static func shape(_ tensor: Tensor, _ expected: [Int], _ name: String) throws {
        guard tensor.shape == expected else {
            throw NunchakuError.shapeMismatch(context: name, expected: expected, actual: tensor.shape)
        }
    }

    static func dtype(_ tensor: Tensor, _ allowed: [DType], _ name: String) throws {
        guard allowed.contains(tensor.dtype) else {
            throw NunchakuError.dtypeMismatch(context: name, expected: allowed, actual: tensor.dtype)
        }
    }

    /// Throws unless `value` is a positive multiple of `multiple`.
    static func multiple(_ value: Int, of multiple: Int, _ what: String, _ name: String) throws {
        guard value > 0, value % multiple == 0 else {
            throw NunchakuError.invalidArgument(context: name, reason: "\(what) = \(value) is not a positive multiple of \(multiple)")
        }
    }

    /// The [rows, columns] of a rank-2 tensor.
    static func matrix(_ tensor: Tensor, _ name: String) throws -> (rows: Int, columns: Int) {
        guard tensor.rank == 2 else {
            throw NunchakuError.invalidArgument(context: name, reason: "expected a 2-D tensor, got shape \(tensor.shape)")
        }
        return (tensor.shape[0], tensor.shape[1])
    }
}
