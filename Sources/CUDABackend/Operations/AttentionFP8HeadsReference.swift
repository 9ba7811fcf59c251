import NunchakuCore

/// The CPU reference of the float8 heads pass (`CUDAContext.writeHeads(of:…into: AttentionFP8Heads…)` for each
/// stream, then `writeValueCodes`): the same IEEE float32 operations in the same order as ops_qkv_heads.cu — per
/// lane of 32 the squares of four values as one product and three fused multiply-adds, summed over the lanes in the
/// warp's butterfly order; 1 / √(sum / d + eps); `(x · r) · w` rounded to the activation format; the rotation
/// `(a·c − b·s, b·c + a·s)` without fused products; the code `e4m3(y · factor)` — so codes and scales are
/// bit-identical to the GPU's.
public enum AttentionFP8HeadsReference {
    /// One token stream: its fused projection `[B, S, 3·H·128]` (16-bit values widened), its RMSNorm weights `[128]`,
    /// and the joint row of its first token.
    public struct Stream: Sendable {
        public var qkv: [Float]
        public var tokens: Int
        public var queryNorm: [Float]
        public var keyNorm: [Float]
        public var tokenOffset: Int

        public init(qkv: [Float], tokens: Int, queryNorm: [Float], keyNorm: [Float], tokenOffset: Int) {
            self.qkv = qkv
            self.tokens = tokens
            self.queryNorm = queryNorm
            self.keyNorm = keyNorm
            self.tokenOffset = tokenOffset
        }
    }

    /// The operands, and the joint heads they stand for, `[B, J, H, 128]` each: q and k normalized and rotated
    /// (float32, before quantization), v as written in 16 bits. Rows no stream writes are zero.
    public struct Heads: Sendable {
        public var operands: AttentionFP8Reference.Operands
        public var query: [Float]
        public var key: [Float]
        public var value: [Float]
    }

    /// The float8 heads of `streams` over `jointTokens` tokens with `cos`, `sin` float32 `[J, 128]`, q and k codes
    /// scaled by `448 / queryBound`, `448 / keyBound`, the normalized values rounded to `dtype` (bf16 or f16).
    public static func heads(_ streams: [Stream], batch: Int, jointTokens: Int, heads: Int, cos: [Float], sin: [Float],
                             eps: Float = 1e-6, queryBound: Float, keyBound: Float, dtype: DType) -> Heads {
        let d = AttentionFP8Launch.headDim, width = heads * d
        let round: (Float) -> Float = dtype == .f16
            ? { FloatFormats.float(f16: FloatFormats.f16Bits($0)) } : { FloatFormats.float(bf16: FloatFormats.bf16Bits($0)) }
        var parts = [[Float]](repeating: [Float](repeating: 0, count: batch * jointTokens * width), count: 3)
        for stream in streams {
            for sample in 0..<batch {
                for token in 0..<stream.tokens {
                    let position = stream.tokenOffset + token
                    let source = (sample * stream.tokens + token) * 3 * width, target = (sample * jointTokens + position) * width
                    let table = (position * d)..<(position * d + d)
                    for head in 0..<heads {
                        for (part, weight) in [stream.queryNorm, stream.keyNorm].enumerated() {
                            let input = source + part * width + head * d
                            let y = normalizedRotated(stream.qkv[input..<(input + d)], weight: weight, cos: cos[table], sin: sin[table],
                                                      eps: eps, round: round)
                            parts[part].replaceSubrange((target + head * d)..<(target + head * d + d), with: y)
                        }
                    }
                    let values = source + 2 * width
                    parts[2].replaceSubrange(target..<(target + width), with: stream.qkv[values..<(values + width)])
                }
            }
        }
        let query = AttentionFP8Heads.factorAndScale(bound: queryBound), key = AttentionFP8Heads.factorAndScale(bound: keyBound)
        let pairs = batch * heads
        let v = AttentionFP8Reference.valueCodes(parts[2], batch: batch, tokens: jointTokens, heads: heads)
        let operands = AttentionFP8Reference.Operands(
            query: AttentionFP8Reference.rowCodes(parts[0], factors: Array(repeating: query.factor, count: pairs), batch: batch,
                                                  tokens: jointTokens, heads: heads),
            key: AttentionFP8Reference.rowCodes(parts[1], factors: Array(repeating: key.factor, count: pairs), batch: batch,
                                                tokens: jointTokens, heads: heads),
            valueTransposed: v.codes,
            scales: Array(repeating: query.scale, count: pairs) + Array(repeating: key.scale, count: pairs) + v.scales)
        return Heads(operands: operands, query: parts[0], key: parts[1], value: parts[2])
    }

    /// One head of 128 values after RMSNorm with `weight` (rounded by `round`) and RoPE with the token's table rows,
    /// in the kernel's order of operations.
    static func normalizedRotated(_ x: ArraySlice<Float>, weight: [Float], cos: ArraySlice<Float>, sin: ArraySlice<Float>,
                                  eps: Float, round: (Float) -> Float) -> [Float] {
        let d = AttentionFP8Launch.headDim
        let (x, cos, sin) = (Array(x), Array(cos), Array(sin))
        // Lane l holds elements 4l ..< 4l + 4; the warp sum is a butterfly over lane distances 16, 8, 4, 2, 1.
        var lanes = (0..<(d / 4)).map { lane -> Float in
            let first = 4 * lane
            var sum = x[first] * x[first]
            for i in (first + 1)..<(first + 4) { sum = sum.addingProduct(x[i], x[i]) }
            return sum
        }
        var distance = lanes.count / 2
        while distance > 0 {
            lanes = lanes.indices.map { lanes[$0] + lanes[$0 ^ distance] }
            distance /= 2
        }
        let inverseRMS = 1 / (lanes[0] / Float(d) + eps).squareRoot()
        let a = (0..<d).map { round(x[$0] * inverseRMS * weight[$0]) }
        var y = [Float](repeating: 0, count: d)
        for pair in stride(from: 0, to: d, by: 2) {
            y[pair] = a[pair] * cos[pair] - a[pair + 1] * sin[pair]
            y[pair + 1] = a[pair + 1] * cos[pair + 1] + a[pair] * sin[pair + 1]
        }
        return y
    }
}
