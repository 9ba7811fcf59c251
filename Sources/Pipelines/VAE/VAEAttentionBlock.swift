import CPUBackend
import Foundation
import Models
import NunchakuCore

/// The VAE mid block's self-attention (diffusers `Attention` with one head of width C, a GroupNorm in front and a
/// residual connection): `out = x + to_out(softmax(q kᵀ / √C) v)` with `q, k, v = to_{q,k,v}(GroupNorm(x))` over the
/// H·W pixels as tokens. The softmax is fp32; queries are processed in blocks so the score matrix stays small
/// (a 128×128 latent has 16384 tokens: the full matrix would take 1 GiB).
struct VAEAttentionBlock {
    let name: String
    let channels: Int
    let norm: VAEGroupNorm
    /// About how many scores one query block holds (4 Mi: 16 MiB of fp32).
    let scoreBudget: Int
    private let query: VAELinear
    private let key: VAELinear
    private let value: VAELinear
    private let output: VAELinear

    /// Reads `<name>.group_norm` and `<name>.{to_q, to_k, to_v, to_out.0}` (weights `[C, C]`, biases `[C]`).
    init(
        _ name: String, channels: Int, groups: Int, weights: WeightReader, precision: VAEPrecision, scoreBudget: Int = 4 << 20
    ) throws {
        self.name = name
        self.channels = channels
        self.scoreBudget = scoreBudget
        norm = try VAEGroupNorm("\(name).group_norm", groups: groups, channels: channels, weights: weights, precision: precision)
        query = try VAELinear("\(name).to_q", features: channels, weights: weights, precision: precision)
        key = try VAELinear("\(name).to_k", features: channels, weights: weights, precision: precision)
        value = try VAELinear("\(name).to_v", features: channels, weights: weights, precision: precision)
        output = try VAELinear("\(name).to_out.0", features: channels, weights: weights, precision: precision)
    }

    func callAsFunction(_ x: FeatureMap, precision: VAEPrecision) throws -> FeatureMap {
        let tokens = x.pixelCount
        let normalized = try norm(x, thenSiLU: false, precision: precision).values
        let q = query(normalized, tokens: tokens, precision: precision)
        let k = key(normalized, tokens: tokens, precision: precision)
        let transposedValues = Matmul.transpose(value(normalized, tokens: tokens, precision: precision), rows: tokens, columns: channels)
        var attended = [Float](repeating: 0, count: tokens * channels)
        let scale = Float(1 / Double(channels).squareRoot())
        let blockRows = max(1, min(tokens, scoreBudget / tokens))
        var scores = [Float](repeating: 0, count: blockRows * tokens)
        q.withUnsafeBufferPointer { q in
            k.withUnsafeBufferPointer { k in
                transposedValues.withUnsafeBufferPointer { v in
                    attended.withUnsafeMutableBufferPointer { attended in
                        scores.withUnsafeMutableBufferPointer { scores in
                            var first = 0
                            while first < tokens {
                                let rows = min(blockRows, tokens - first)
                                Matmul.multiplyTransposed(
                                    q.baseAddress! + first * channels, k.baseAddress!, into: scores.baseAddress!,
                                    m: rows, n: tokens, k: channels)
                                softmaxRows(scores.baseAddress!, rows: rows, columns: tokens, scale: scale)
                                Matmul.multiplyTransposed(
                                    scores.baseAddress!, v.baseAddress!, into: attended.baseAddress! + first * channels,
                                    m: rows, n: channels, k: tokens)
                                first += rows
                            }
                        }
                    }
                }
            }
        }
        precision.round(&attended)
        let projected = FeatureMap(
            height: x.height, width: x.width, channels: channels, values: output(attended, tokens: tokens, precision: precision))
        return x.adding(projected, precision: precision)
    }

    /// Each row becomes `softmax(row · scale)` in fp32, rows spread over all cores.
    private func softmaxRows(_ scores: UnsafeMutablePointer<Float>, rows: Int, columns: Int, scale: Float) {
        parallelFor(rows) { row in
            let start = scores + row * columns
            var maximum = -Float.infinity
            for j in 0..<columns {
                start[j] *= scale
                maximum = max(maximum, start[j])
            }
            var total: Float = 0
            for j in 0..<columns {
                start[j] = exp(start[j] - maximum)
                total += start[j]
            }
            let inverse = 1 / total
            for j in 0..<columns { start[j] *= inverse }
        }
    }
}

/// A square `nn.Linear(features, features)` with bias over token rows: `y = x · Wᵀ + b`, rounded once to the precision.
struct VAELinear {
    let name: String
    let features: Int
    private let weight: [Float]
    private let bias: [Float]

    init(_ name: String, features: Int, weights: WeightReader, precision: VAEPrecision) throws {
        self.name = name
        self.features = features
        weight = try parameterValues(weights, "\(name).weight", shape: [features, features], precision)
        bias = try parameterValues(weights, "\(name).bias", shape: [features], precision)
    }

    func callAsFunction(_ x: [Float], tokens: Int, precision: VAEPrecision) -> [Float] {
        var y = Matmul.multiplyTransposed(x, weight, m: tokens, n: features, k: features)
        y.withUnsafeMutableBufferPointer { y in
            forChunks(of: tokens) { rows in
                for row in rows {
                    for column in 0..<features { y[row * features + column] = precision.round(y[row * features + column] + bias[column]) }
                }
            }
        }
        return y
    }
}
