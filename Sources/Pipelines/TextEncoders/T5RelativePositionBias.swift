import Foundation
import NunchakuCore

/// T5's bidirectional relative-position buckets and the per-head bias they index (`relative_attention_bias` of the
/// first block's self-attention, shared by every block of the encoder).
public enum T5RelativePosition {
    /// The bucket of `relativePosition` (key position − query position) for a bidirectional encoder, as
    /// `T5Attention._relative_position_bucket`: half the buckets per sign; within a sign, distances below a quarter of
    /// `numBuckets` get their own bucket, larger ones share logarithmic bins up to `maxDistance`, beyond which all
    /// share the last bucket.
    public static func bucket(_ relativePosition: Int, numBuckets: Int, maxDistance: Int) -> Int {
        let half = numBuckets / 2
        let signBucket = relativePosition > 0 ? half : 0
        let distance = abs(relativePosition)
        let maxExact = half / 2
        if distance < maxExact { return signBucket + distance }
        // torch: (log(n.float() / max_exact) / log(max_distance / max_exact) * (half − max_exact)).to(long), in fp32.
        let ratio = Float(distance) / Float(maxExact)
        let scaled = Foundation.log(ratio) / Float(Foundation.log(Double(maxDistance) / Double(maxExact))) * Float(half - maxExact)
        return signBucket + min(maxExact + Int(scaled), half - 1)
    }

    /// The bias `[heads, tokens, tokens]`: entry (h, i, j) is `table[bucket(j − i)][h]`, `table` being the
    /// `[numBuckets, heads]` embedding.
    static func bias(table: [Float], heads: Int, tokens: Int, numBuckets: Int, maxDistance: Int) -> [Float] {
        var bias = [Float](repeating: 0, count: heads * tokens * tokens)
        for query in 0..<tokens {
            for key in 0..<tokens {
                let row = bucket(key - query, numBuckets: numBuckets, maxDistance: maxDistance) * heads
                for head in 0..<heads { bias[(head * tokens + query) * tokens + key] = table[row + head] }
            }
        }
        return bias
    }
}
