import CPUBackend
import Foundation
import NunchakuCore

/// Multi-head self-attention scores and mixing shared by the CLIP text model and the T5 encoder:
/// `softmax(scale · Q·Kᵀ + bias) · V` per sample and head, in fp32, rounded once to the query's dtype.
enum TextEncoderAttention {
    /// `query`, `key`, `value` are `[B, S, H·d]` (projection outputs); the result is `[B, S, H·d]`.
    /// - Parameters:
    ///   - scale: multiplies the scores (CLIP: 1/√d; T5: 1, it does not scale).
    ///   - bias: added to the scaled scores, `[H, S, S]` (T5's relative position bias), or nil.
    ///   - causal: when true, query i sees keys 0…i only (CLIP's causal mask).
    static func attend(query: Tensor, key: Tensor, value: Tensor, heads: Int, scale: Float, bias: [Float]?,
                       causal: Bool, context: String) throws -> Tensor {
        guard query.rank == 3, key.shape == query.shape, value.shape == query.shape, query.shape[2] % heads == 0 else {
            throw NunchakuError.shapeMismatch(context: context, expected: query.shape, actual: key.shape)
        }
        let (batch, tokens, width) = (query.shape[0], query.shape[1], query.shape[2])
        let headDim = width / heads
        if let bias, bias.count != heads * tokens * tokens {
            throw NunchakuError.shapeMismatch(context: "\(context) bias", expected: [heads, tokens, tokens], actual: [bias.count])
        }
        let q = try query.floatValues(context: context)
        let k = try key.floatValues(context: context)
        let v = try value.floatValues(context: context)
        var output = [Float](repeating: 0, count: q.count)
        for sample in 0..<batch {
            for head in 0..<heads {
                let queries = gather(q, sample: sample, head: head, tokens: tokens, width: width, headDim: headDim)
                let keys = gather(k, sample: sample, head: head, tokens: tokens, width: width, headDim: headDim)
                let values = Matmul.transpose(
                    gather(v, sample: sample, head: head, tokens: tokens, width: width, headDim: headDim),
                    rows: tokens, columns: headDim)
                var scores = Matmul.multiplyTransposed(queries, keys, m: tokens, n: tokens, k: headDim)
                let headBias = bias.map { Array($0[(head * tokens * tokens)..<((head + 1) * tokens * tokens)]) }
                softmaxRows(&scores, tokens: tokens, scale: scale, bias: headBias, causal: causal)
                let mixed = Matmul.multiplyTransposed(scores, values, m: tokens, n: headDim, k: tokens)
                for token in 0..<tokens {
                    let row = (sample * tokens + token) * width + head * headDim
                    for d in 0..<headDim { output[row + d] = mixed[token * headDim + d] }
                }
            }
        }
        return Tensor.rounding(output, shape: query.shape, to: query.dtype)
    }

    /// One head's rows `[tokens, headDim]` from a `[B, S, H·d]` array.
    private static func gather(_ x: [Float], sample: Int, head: Int, tokens: Int, width: Int, headDim: Int) -> [Float] {
        var result = [Float](repeating: 0, count: tokens * headDim)
        for token in 0..<tokens {
            let source = (sample * tokens + token) * width + head * headDim
            for d in 0..<headDim { result[token * headDim + d] = x[source + d] }
        }
        return result
    }

    /// Each row i of the `[tokens, tokens]` scores becomes `softmax(scale · row + bias row)`, keys j > i dropped when
    /// `causal`.
    private static func softmaxRows(_ scores: inout [Float], tokens: Int, scale: Float, bias: [Float]?, causal: Bool) {
        for row in 0..<tokens {
            let start = row * tokens
            let visible = causal ? row + 1 : tokens
            var maximum = -Float.infinity
            for j in 0..<visible {
                let score = scores[start + j] * scale + (bias?[start + j] ?? 0)
                scores[start + j] = score
                maximum = max(maximum, score)
            }
            var total: Float = 0
            for j in 0..<visible {
                let weight = Foundation.exp(scores[start + j] - maximum)
                scores[start + j] = weight
                total += weight
            }
            for j in 0..<visible { scores[start + j] /= total }
            for j in visible..<tokens { scores[start + j] = 0 }
        }
    }
}
