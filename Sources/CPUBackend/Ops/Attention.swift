import Foundation
import NunchakuCore

extension CPUOps {
    /// Scaled dot-product attention `softmax(Q·Kᵀ/√d) · V` per sample and head, with an fp32 softmax.
    ///
    /// `query` is `[B, Sq, H, d]`, `key` and `value` are `[B, Skv, H, d]` (the layout of a projection's output viewed
    /// as heads); the result is `[B, Sq, H, d]` in the query's dtype. `keyMask`, when given, is `[B, Skv]`: keys whose
    /// entry is zero/false are ignored (a key-padding mask). Work is spread over samples, heads and query blocks.
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
        let queryBlock = 16
        let queryBlocks = (queryTokens + queryBlock - 1) / queryBlock
        q.withUnsafeBufferPointer { q in
            k.withUnsafeBufferPointer { k in
                v.withUnsafeBufferPointer { v in
                    output.withUnsafeMutableBufferPointer { output in
                        parallelFor(batch * heads * queryBlocks) { job in
                            let sample = job / (heads * queryBlocks)
                            let head = (job / queryBlocks) % heads
                            let firstQuery = (job % queryBlocks) * queryBlock
                            var scores = [Float](repeating: 0, count: keyTokens)
                            var accumulator = [Float](repeating: 0, count: headDim)
                            for queryToken in firstQuery..<min(queryTokens, firstQuery + queryBlock) {
                                let queryRow = ((sample * queryTokens + queryToken) * heads + head) * headDim
                                // Scores and their maximum (masked keys score −∞).
                                var maximum = -Float.infinity
                                for keyToken in 0..<keyTokens {
                                    if let allowed, !allowed[sample * keyTokens + keyToken] {
                                        scores[keyToken] = -.infinity
                                        continue
                                    }
                                    let keyRow = ((sample * keyTokens + keyToken) * heads + head) * headDim
                                    let score = dot(q.baseAddress! + queryRow, k.baseAddress! + keyRow, headDim) * scale
                                    scores[keyToken] = score
                                    maximum = max(maximum, score)
                                }
                                // Softmax weights and the weighted sum of values.
                                var total: Float = 0
                                for index in accumulator.indices { accumulator[index] = 0 }
                                for keyToken in 0..<keyTokens where scores[keyToken] > -.infinity {
                                    let weight = Foundation.exp(scores[keyToken] - maximum)
                                    total += weight
                                    let valueRow = ((sample * keyTokens + keyToken) * heads + head) * headDim
                                    for d in 0..<headDim { accumulator[d] += weight * v[valueRow + d] }
                                }
                                for d in 0..<headDim { output[queryRow + d] = accumulator[d] / total }
                            }
                        }
                    }
                }
            }
        }
        return Tensor.rounding(output, shape: query.shape, to: query.dtype)
    }

    /// `Σ a[i]·b[i]` over `count` floats, eight lanes at a time.
    @inline(__always)
    private static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        var lanes = SIMD8<Float>()
        var index = 0
        while index + 8 <= count {
            lanes += UnsafeRawPointer(a + index).loadUnaligned(as: SIMD8<Float>.self)
                * UnsafeRawPointer(b + index).loadUnaligned(as: SIMD8<Float>.self)
            index += 8
        }
        var sum = lanes.sum()
        while index < count {
            sum += a[index] * b[index]
            index += 1
        }
        return sum
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
