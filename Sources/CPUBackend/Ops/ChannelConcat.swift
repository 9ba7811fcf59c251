import NunchakuCore

extension CPUOps {
    /// Concatenates tensors of one dtype along their last dimension (all leading dimensions equal).
    /// No rounding: bytes are copied.
    public static func concatLastDimension(_ parts: [Tensor]) throws -> Tensor {
        let context = "concatLastDimension"
        guard let first = parts.first, first.rank >= 1, !first.dtype.isPacked4Bit else {
            throw NunchakuError.invalidArgument(context: context, reason: "needs at least one tensor of whole-byte elements")
        }
        let leading = Array(first.shape.dropLast())
        for (index, part) in parts.enumerated() {
            guard part.dtype == first.dtype else {
                throw NunchakuError.dtypeMismatch(context: "\(context) part \(index)", expected: [first.dtype], actual: part.dtype)
            }
            guard part.rank == first.rank, Array(part.shape.dropLast()) == leading else {
                throw NunchakuError.shapeMismatch(context: "\(context) part \(index)", expected: leading + [part.shape.last ?? 0], actual: part.shape)
            }
        }
        let rows = leading.reduce(1, *)
        let elementBytes = first.dtype.bitWidth / 8
        let widths = parts.map { $0.shape[$0.rank - 1] }
        let total = widths.reduce(0, +)
        var result = Tensor(zeros: leading + [total], dtype: first.dtype)
        result.withUnsafeMutableBytes { destination in
            var columnOffset = 0
            for (part, width) in zip(parts, widths) {
                part.withUnsafeBytes { source in
                    for row in 0..<rows where width > 0 {
                        destination.baseAddress!.advanced(by: (row * total + columnOffset) * elementBytes).copyMemory(
                            from: source.baseAddress!.advanced(by: row * width * elementBytes), byteCount: width * elementBytes)
                    }
                }
                columnOffset += width
            }
        }
        return result
    }

    /// Splits a tensor along its last dimension into pieces of `sizes` columns (which must sum to that dimension).
    public static func splitLastDimension(_ x: Tensor, sizes: [Int]) throws -> [Tensor] {
        let context = "splitLastDimension"
        guard x.rank >= 1, !x.dtype.isPacked4Bit else {
            throw NunchakuError.invalidArgument(context: context, reason: "needs a tensor of whole-byte elements, got \(x.dtype) \(x.shape)")
        }
        let total = x.shape[x.rank - 1]
        guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == total else {
            throw NunchakuError.invalidArgument(context: context, reason: "sizes \(sizes) do not sum to the last dimension of \(x.shape)")
        }
        let leading = Array(x.shape.dropLast())
        let rows = leading.reduce(1, *)
        let elementBytes = x.dtype.bitWidth / 8
        return x.withUnsafeBytes { source in
            var columnOffset = 0
            return sizes.map { width in
                var piece = Tensor(zeros: leading + [width], dtype: x.dtype)
                piece.withUnsafeMutableBytes { destination in
                    for row in 0..<rows where width > 0 {
                        destination.baseAddress!.advanced(by: row * width * elementBytes).copyMemory(
                            from: source.baseAddress!.advanced(by: (row * total + columnOffset) * elementBytes),
                            byteCount: width * elementBytes)
                    }
                }
                columnOffset += width
                return piece
            }
        }
    }
}
