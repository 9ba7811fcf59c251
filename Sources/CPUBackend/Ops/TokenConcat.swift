import NunchakuCore

extension CPUOps {
    /// Concatenates `[B, Sᵢ, …]` tensors of one dtype along the token axis (axis 1). No rounding: bytes are copied.
    public static func concatTokens(_ parts: [Tensor]) throws -> Tensor {
        let context = "concatTokens"
        guard let first = parts.first else {
            throw NunchakuError.invalidArgument(context: context, reason: "nothing to concatenate")
        }
        guard first.rank >= 2, !first.dtype.isPacked4Bit else {
            throw NunchakuError.invalidArgument(context: context, reason: "needs [B, S, …] tensors of whole-byte elements, got \(first.dtype) \(first.shape)")
        }
        let batch = first.shape[0], trailing = Array(first.shape.dropFirst(2))
        for (index, part) in parts.enumerated() {
            guard part.dtype == first.dtype else {
                throw NunchakuError.dtypeMismatch(context: "\(context) part \(index)", expected: [first.dtype], actual: part.dtype)
            }
            guard part.rank == first.rank, part.shape[0] == batch, Array(part.shape.dropFirst(2)) == trailing else {
                throw NunchakuError.shapeMismatch(
                    context: "\(context) part \(index)", expected: [batch, part.shape.count > 1 ? part.shape[1] : 0] + trailing, actual: part.shape)
            }
        }
        let tokenBytes = first.dtype.byteCount(forElements: trailing.reduce(1, *))
        let totalTokens = parts.reduce(0) { $0 + $1.shape[1] }
        var result = Tensor(zeros: [batch, totalTokens] + trailing, dtype: first.dtype)
        result.withUnsafeMutableBytes { destination in
            var tokenOffset = 0
            for part in parts {
                let tokens = part.shape[1]
                part.withUnsafeBytes { source in
                    for sample in 0..<batch where tokens > 0 {
                        let target = (sample * totalTokens + tokenOffset) * tokenBytes
                        destination.baseAddress!.advanced(by: target).copyMemory(
                            from: source.baseAddress!.advanced(by: sample * tokens * tokenBytes), byteCount: tokens * tokenBytes)
                    }
                }
                tokenOffset += tokens
            }
        }
        return result
    }

    /// Splits a `[B, S, …]` tensor along the token axis into pieces of `sizes` tokens (which must sum to S).
    public static func splitTokens(_ x: Tensor, sizes: [Int]) throws -> [Tensor] {
        let context = "splitTokens"
        guard x.rank >= 2, !x.dtype.isPacked4Bit else {
            throw NunchakuError.invalidArgument(context: context, reason: "needs a [B, S, …] tensor of whole-byte elements, got \(x.dtype) \(x.shape)")
        }
        guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == x.shape[1] else {
            throw NunchakuError.invalidArgument(context: context, reason: "sizes \(sizes) do not sum to the \(x.shape[1]) tokens of \(x.shape)")
        }
        let batch = x.shape[0], trailing = Array(x.shape.dropFirst(2))
        let tokenBytes = x.dtype.byteCount(forElements: trailing.reduce(1, *))
        return x.withUnsafeBytes { source in
            var tokenOffset = 0
            return sizes.map { tokens in
                var piece = Tensor(zeros: [batch, tokens] + trailing, dtype: x.dtype)
                piece.withUnsafeMutableBytes { destination in
                    for sample in 0..<batch where tokens > 0 {
                        destination.baseAddress!.advanced(by: sample * tokens * tokenBytes).copyMemory(
                            from: source.baseAddress!.advanced(by: (sample * x.shape[1] + tokenOffset) * tokenBytes),
                            byteCount: tokens * tokenBytes)
                    }
                }
                tokenOffset += tokens
                return piece
            }
        }
    }
}
