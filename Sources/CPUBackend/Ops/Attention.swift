import Foundation
import NunchakuCore

extension CPUOps {
    /// Scaled dot-product attention `softmax(Q·Kᵀ/√d) · V` per sample and head, with an fp32 softmax.
    ///
    /// `query` is `[B, Sq, H, d]`, `key` and `value` are `[B, Skv, H, d]` (the layout of a projection's output viewed
    /// as heads); the result is `[B, Sq, H, d]` in the query's dtype. `keyMask`, when given, is `[B, Skv]`: keys whose
    /// entry is zero/false are ignored (a key-padding mask). Per sample and head, the scores and the weighted sum are
    /// fp32 GEMMs on all cores, and the softmax runs over rows in parallel.
    /// - Throws: on mismatched shapes or dtypes, and when a sample's mask hides every key.
    public static func attention(query: Tensor, key: Tensor, value: Tensor, keyMask: Tensor? = nil) throws -> Tensor {
        let context = "attention"
        for (name, tensor) in [("query", query), ("key", key), ("value", value)] {
            try OpCheck.activation(tensor, "\(context) \(name)")
            try OpCheck.rank(tensor, 4, "\(context) \(name)")
        }
        let (batch, queryTokens, heads, headDim) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3])
        let keyTokens = key.shape[1]
        try OpCheck.shape(key, [batch, keyTokens, heads, headDim], "\(context) key")
        try OpCheck.shape(value, [batch, keyTokens, heads, headDim], "\(context) value")
        guard headDim > 0, keyTokens > 0 else {
            throw NunchakuError.invalidArgument(context: context, reason: "needs at least one key and a non-empty head dimension")
        }
        let allowed = try keyMask.map { try maskValues($0, batch: batch, keyTokens: keyTokens) }

        let q = try query.floatValues(context: "\(context) query")
        let k = try key.floatValues(context: "\(context) key")
        let v = try value.floatValues(context: "\(context) value")
        var output = [Float](repeating: 0, count: q.count)
        let scale = Float(1 / Double(headDim).squareRoot())
        for sample in 0..<batch {
            for head in 0..<heads {
                // One head as plain matrices: Q [Sq, d], K [Skv, d], Vᵀ [d, Skv].
                let queries = gatherHead(q, sample: sample, head: head, tokens: queryTokens, heads: heads, headDim: headDim)
                let keys = gatherHead(k, sample: sample, head: head, tokens: keyTokens, heads: heads, headDim: headDim)
                let values = Matmul.transpose(
                    gatherHead(v, sample: sample, head: head, tokens: keyTokens, heads: heads, headDim: headDim),
                    rows: keyTokens, columns: headDim)
                var scores = Matmul.multiplyTransposed(queries, keys, m: queryTokens, n: keyTokens, k: headDim)
                let keep = allowed.map { Array($0[(sample * keyTokens)..<((sample + 1) * keyTokens)]) }
                softmaxRows(&scores, columns: keyTokens, scale: scale, keep: keep)
                let headOutput = Matmul.multiplyTransposed(scores, values, m: queryTokens, n: headDim, k: keyTokens)
                for token in 0..<queryTokens {
                    let row = ((sample * queryTokens + token) * heads + head) * headDim
                    for d in 0..<headDim { output[row + d] = headOutput[token * headDim + d] }
                }
            }
        }
        return Tensor.rounding(output, shape: query.shape, to: query.dtype)
    }

    /// Rows `[tokens, headDim]` of one sample and head from a `[B, S, H, d]` array.
    private static func gatherHead(_ x: [Float], sample: Int, head: Int, tokens: Int, heads: Int, headDim: Int) -> [Float] {
        var result = [Float](repeating: 0, count: tokens * headDim)
        for token in 0..<tokens {
            let source = ((sample * tokens + token) * heads + head) * headDim
            for d in 0..<headDim { result[token * headDim + d] = x[source + d] }
        }
        return result
    }

    /// Each row of `scores` becomes `softmax(row · scale)` in fp32; keys with `keep[j] == false` get weight 0.
    private static func softmaxRows(_ scores: inout [Float], columns: Int, scale: Float, keep: [Bool]?) {
        scores.withUnsafeMutableBufferPointer { scores in
            parallelRows(scores.count / columns) { rows in
                for row in rows {
                    let start = row * columns
                    var maximum = -Float.infinity
                    for j in 0..<columns {
                        let score = keep?[j] == false ? -Float.infinity : scores[start + j] * scale
                        scores[start + j] = score
                        maximum = max(maximum, score)
                    }
                    var total: Float = 0
                    for j in 0..<columns {
                        let weight = scores[start + j] == -.infinity ? 0 : Foundation.exp(scores[start + j] - maximum)
                        scores[start + j] = weight
                        total += weight
                    }
                    for j in 0..<columns { scores[start + j] /= total }
                }
            }
        }
    }

    /// The key-padding mask as booleans (non-zero = attend), checked so every sample keeps at least one key.
    private static func maskValues(_ mask: Tensor, batch: Int, keyTokens: Int) throws -> [Bool] {
        let context = "attention keyMask"
        try OpCheck.shape(mask, [batch, keyTokens], context)
        guard !mask.dtype.isPacked4Bit else {
            throw NunchakuError.dtypeMismatch(context: context, expected: [.bool, .u8, .f32], actual: mask.dtype)
        }
        let allowed = mask.doubles().map { $0 != 0 }
        for sample in 0..<batch where !allowed[(sample * keyTokens)..<((sample + 1) * keyTokens)].contains(true) {
            throw NunchakuError.invalidArgument(context: context, reason: "sample \(sample) masks every key; its attention is undefined")
        }
        return allowed
    }
}
