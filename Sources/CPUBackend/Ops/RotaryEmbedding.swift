import Foundation
import NunchakuCore

/// Per-token cosines and sines for rotary position embeddings, `[S, headDim]` each, with each angle repeated for
/// the two elements of its pair (`[c0, c0, c1, c1, …]`), as diffusers' `FluxPosEmbed` returns them.
public struct RotaryTable: Sendable, Equatable {
    /// The number of tokens S.
    public let sequenceLength: Int
    /// The rotated width per head (the sum of the axis dimensions).
    public let headDim: Int
    /// `cos` of every angle, row-major `[S, headDim]`.
    public let cos: [Float]
    /// `sin` of every angle, row-major `[S, headDim]`.
    public let sin: [Float]

    /// The FLUX multi-axis table (`FluxPosEmbed`): axis i of `positionIDs` ([S, axes]) drives `axesDims[i]` head
    /// dimensions with frequencies `1 / theta^(2k/dᵢ)`, k < dᵢ/2. Angles and their cos/sin are computed in `Double`
    /// from the positions as `Float` (like `ids.float()`), then rounded to `Float`.
    /// - Throws: when `positionIDs` is not `[S, axesDims.count]` or an axis dimension is odd or not positive.
    public static func flux(positionIDs: Tensor, axesDims: [Int], theta: Double = 10000) throws -> RotaryTable {
        let context = "rotary position ids"
        guard positionIDs.rank == 2, positionIDs.shape[1] == axesDims.count else {
            throw NunchakuError.shapeMismatch(
                context: context, expected: [positionIDs.shape.first ?? 0, axesDims.count], actual: positionIDs.shape)
        }
        guard positionIDs.dtype != .bool, !positionIDs.dtype.isPacked4Bit else {
            throw NunchakuError.dtypeMismatch(context: context, expected: [.f32, .f64, .i64, .i32, .bf16], actual: positionIDs.dtype)
        }
        guard axesDims.allSatisfy({ $0 > 0 && $0 % 2 == 0 }) else {
            throw NunchakuError.invalidArgument(context: context, reason: "axis dimensions \(axesDims) must be even and positive")
        }
        let tokens = positionIDs.shape[0], axes = axesDims.count
        let headDim = axesDims.reduce(0, +)
        let positions = positionIDs.doubles().map { Double(Float($0)) }
        var cosValues = [Float](repeating: 0, count: tokens * headDim)
        var sinValues = [Float](repeating: 0, count: tokens * headDim)
        var axisStart = 0
        for (axis, dimension) in axesDims.enumerated() {
            let frequencies = (0..<(dimension / 2)).map { 1.0 / Foundation.pow(theta, Double(2 * $0) / Double(dimension)) }
            for token in 0..<tokens {
                let position = positions[token * axes + axis]
                for (pair, frequency) in frequencies.enumerated() {
                    let angle = position * frequency
                    let index = token * headDim + axisStart + 2 * pair
                    let (c, s) = (Float(Foundation.cos(angle)), Float(Foundation.sin(angle)))
                    cosValues[index] = c; cosValues[index + 1] = c
                    sinValues[index] = s; sinValues[index + 1] = s
                }
            }
            axisStart += dimension
        }
        return RotaryTable(sequenceLength: tokens, headDim: headDim, cos: cosValues, sin: sinValues)
    }

    /// A table from explicit `[S, headDim]` cos and sin values (pairs should repeat their angle).
    public init(sequenceLength: Int, headDim: Int, cos: [Float], sin: [Float]) {
        precondition(cos.count == sequenceLength * headDim && sin.count == cos.count, "rotary table sizes do not match")
        self.sequenceLength = sequenceLength
        self.headDim = headDim
        self.cos = cos
        self.sin = sin
    }

    /// The cosines as an f32 tensor `[S, headDim]`.
    public var cosTensor: Tensor { Tensor(cos, shape: [sequenceLength, headDim]) }
    /// The sines as an f32 tensor `[S, headDim]`.
    public var sinTensor: Tensor { Tensor(sin, shape: [sequenceLength, headDim]) }
}

extension CPUOps {
    /// Rotates adjacent pairs `(x[2k], x[2k+1])` of every head by the table's angles (diffusers' `apply_rotary_emb`
    /// with `use_real_unbind_dim=-1`): `out[2k] = x[2k]·cos − x[2k+1]·sin`, `out[2k+1] = x[2k+1]·cos + x[2k]·sin`.
    ///
    /// `x` is `[B, S, H, headDim]`; the table must have S rows and the same head width. Computed in `Float`.
    public static func applyRotary(_ x: Tensor, table: RotaryTable) throws -> Tensor {
        let context = "applyRotary"
        try OpCheck.activation(x, context)
        try OpCheck.rank(x, 4, context)
        let (batch, tokens, heads, headDim) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard tokens == table.sequenceLength, headDim == table.headDim else {
            throw NunchakuError.shapeMismatch(
                context: "\(context) table", expected: [tokens, headDim], actual: [table.sequenceLength, table.headDim])
        }
        let input = try x.floatValues(context: context)
        var output = [Float](repeating: 0, count: input.count)
        for sample in 0..<batch {
            for token in 0..<tokens {
                let angles = token * headDim
                for head in 0..<heads {
                    let row = ((sample * tokens + token) * heads + head) * headDim
                    for pair in stride(from: 0, to: headDim, by: 2) {
                        let even = input[row + pair], odd = input[row + pair + 1]
                        output[row + pair] = even * table.cos[angles + pair] + (-odd) * table.sin[angles + pair]
                        output[row + pair + 1] = odd * table.cos[angles + pair + 1] + even * table.sin[angles + pair + 1]
                    }
                }
            }
        }
        return Tensor.rounding(output, shape: x.shape, to: x.dtype)
    }
}
