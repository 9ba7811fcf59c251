import NunchakuCore

/// The CPU reference of the float8 attention operands (`CUDAContext.quantizeAttentionOperands`): the same float32
/// operations as attention_fp8_operands.cu, so codes and scales are bit-identical, and their dequantized values.
public enum AttentionFP8Reference {
    /// The codes and scales of q, k, v `[B, S, H, 128]` (values as floats, e.g. bf16 widened).
    public struct Operands: Sendable, Equatable {
        /// `[B, S, H, 128]` e4m3 codes.
        public var query: [UInt8]
        public var key: [UInt8]
        /// `[B, H, 128, Spad]` e4m3 codes, keys permuted within groups of 16 (`valuePosition`), zero past S.
        public var valueTransposed: [UInt8]
        /// `[3, B, H]`: q, k, v.
        public var scales: [Float]
    }

    /// Where key `key` of a transposed v row is stored: key 8h + 2t + b of its group of 16 (h, b ∈ {0, 1}, t < 4) at
    /// position 4t + 2h + b, the order in which the attention kernel's P registers hold the keys.
    public static func valuePosition(_ key: Int) -> Int {
        let within = key & 15
        return (key & ~15) | (((within >> 1) & 3) * 4 + ((within >> 3) & 1) * 2 + (within & 1))
    }

    /// The codes and scales of `query`, `key`, `value`, each `[batch, tokens, heads, 128]` row-major: per (part,
    /// sample, head) amax = max |x|, scale = amax / 448, codes e4m3(x · (448 / amax)) (nearest-even, saturating;
    /// amax = 0 gives zero codes and scale).
    public static func quantize(query: [Float], key: [Float], value: [Float], batch: Int, tokens: Int, heads: Int) -> Operands {
        let rows = [query, key].map { values in
            let amax = maxima(values, batch: batch, tokens: tokens, heads: heads)
            return (codes: rowCodes(values, factors: amax.map { $0 > 0 ? 448 / $0 : 0 }, batch: batch, tokens: tokens, heads: heads),
                    scales: amax.map { $0 / 448 })
        }
        let v = valueCodes(value, batch: batch, tokens: tokens, heads: heads)
        return Operands(query: rows[0].codes, key: rows[1].codes, valueTransposed: v.codes,
                        scales: rows[0].scales + rows[1].scales + v.scales)
    }

    /// max |x| per (sample, head) of `[batch, tokens, heads, 128]` values: `[B·H]`.
    static func maxima(_ values: [Float], batch: Int, tokens: Int, heads: Int) -> [Float] {
        let d = AttentionFP8Launch.headDim
        var result = [Float](repeating: 0, count: batch * heads)
        for sample in 0..<batch {
            for token in 0..<tokens {
                for head in 0..<heads {
                    let row = ((sample * tokens + token) * heads + head) * d
                    for i in row..<(row + d) { result[sample * heads + head] = max(result[sample * heads + head], abs(values[i])) }
                }
            }
        }
        return result
    }

    /// Codes e4m3(x · factor) (nearest-even, saturating) in the layout of `values` `[B, S, H, 128]`, with the
    /// factor of each (sample, head) (`[B·H]`).
    static func rowCodes(_ values: [Float], factors: [Float], batch: Int, tokens: Int, heads: Int) -> [UInt8] {
        let d = AttentionFP8Launch.headDim
        var codes = [UInt8](repeating: 0, count: values.count)
        for sample in 0..<batch {
            for token in 0..<tokens {
                for head in 0..<heads {
                    let row = ((sample * tokens + token) * heads + head) * d, factor = factors[sample * heads + head]
                    for i in row..<(row + d) { codes[i] = FloatFormats.e4m3fnBits(values[i] * factor, saturating: true) }
                }
            }
        }
        return codes
    }

    /// The v codes of `value` `[batch, tokens, heads, 128]` with the dynamic scale: e4m3(v · (448 / amax)) per (sample,
    /// head), transposed to `[B, H, 128, Spad]` and key-permuted (`valuePosition`), zero past S; and the scales
    /// amax / 448 `[B·H]`.
    public static func valueCodes(_ value: [Float], batch: Int, tokens: Int, heads: Int) -> (codes: [UInt8], scales: [Float]) {
        let d = AttentionFP8Launch.headDim, padded = AttentionFP8Launch.paddedTokens(tokens)
        let amax = maxima(value, batch: batch, tokens: tokens, heads: heads)
        let codes = rowCodes(value, factors: amax.map { $0 > 0 ? 448 / $0 : 0 }, batch: batch, tokens: tokens, heads: heads)
        var transposed = [UInt8](repeating: 0, count: batch * heads * d * padded)
        for sample in 0..<batch {
            for token in 0..<tokens {
                for head in 0..<heads {
                    let row = ((sample * tokens + token) * heads + head) * d
                    for dimension in 0..<d {
                        transposed[((sample * heads + head) * d + dimension) * padded + valuePosition(token)] = codes[row + dimension]
                    }
                }
            }
        }
        return (transposed, amax.map { $0 / 448 })
    }

    /// The values the codes stand for: q, k and v `[B, S, H, 128]` (code · scale), for attention on exactly what the
    /// kernel multiplies.
    public static func dequantize(_ operands: Operands, batch: Int, tokens: Int, heads: Int) -> (query: [Float], key: [Float], value: [Float]) {
        let d = AttentionFP8Launch.headDim, padded = AttentionFP8Launch.paddedTokens(tokens)
        var parts = [[Float]](repeating: [Float](repeating: 0, count: batch * tokens * heads * d), count: 3)
        for part in 0..<3 {
            for sample in 0..<batch {
                for head in 0..<heads {
                    let scale = operands.scales[(part * batch + sample) * heads + head]
                    for token in 0..<tokens {
                        let row = ((sample * tokens + token) * heads + head) * d
                        for dimension in 0..<d {
                            let code: UInt8
                            switch part {
                            case 0: code = operands.query[row + dimension]
                            case 1: code = operands.key[row + dimension]
                            default: code = operands.valueTransposed[((sample * heads + head) * d + dimension) * padded + valuePosition(token)]
                            }
                            parts[part][row + dimension] = FloatFormats.float(e4m3fn: code) * scale
                        }
                    }
                }
            }
        }
        return (parts[0], parts[1], parts[2])
    }
}
