import CPUBackend
import Foundation
import Models
import NunchakuCore

/// A dense linear of a text encoder: `y = x · Wᵀ (+ b)` over the last dimension, accumulated in fp32 and rounded once
/// to the activation dtype.
///
/// The weight stays as the checkpoint holds it (a view of the mapped file) and is widened, rounded to the compute
/// dtype, per call: a T5-XXL then needs no resident copy of its 4.7 B parameters, and the widening costs
/// `1/tokens` of the product.
struct TextEncoderLinear: Sendable {
    let name: String
    let inFeatures: Int
    let outFeatures: Int
    /// `[outFeatures, inFeatures]` in the checkpoint's float dtype.
    let weight: Tensor
    /// The dtype weights are rounded to before use.
    let dtype: DType
    let bias: [Float]?

    /// Reads `name.weight` `[out, in]` (and `name.bias` `[out]` when `hasBias`) through `reader`.
    init(_ name: String, inFeatures: Int, outFeatures: Int, hasBias: Bool, reader: WeightReader, dtype: DType) throws {
        self.name = name
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.dtype = dtype
        weight = reader.tensor("\(name).weight", shape: [outFeatures, inFeatures], dtypes: parameterDTypes)
        bias = hasBias ? try parameterValues(reader.tensor("\(name).bias", shape: [outFeatures], dtypes: parameterDTypes), dtype, "\(name).bias") : nil
    }

    /// `x` is `[…, inFeatures]`; the result is `[…, outFeatures]` in `x`'s dtype.
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard x.rank >= 1, x.shape[x.rank - 1] == inFeatures else {
            throw NunchakuError.shapeMismatch(context: name, expected: Array(x.shape.dropLast()) + [inFeatures], actual: x.shape)
        }
        let rows = x.elementCount / inFeatures
        let weights = try parameterValues(weight, dtype, "\(name).weight")
        var output = Matmul.multiplyTransposed(try x.floatValues(context: name), weights, m: rows, n: outFeatures, k: inFeatures)
        if let bias {
            for row in 0..<rows {
                for column in 0..<outFeatures { output[row * outFeatures + column] += bias[column] }
            }
        }
        return Tensor.rounding(output, shape: Array(x.shape.dropLast()) + [outFeatures], to: x.dtype)
    }
}

/// A normalization's parameters, read through `reader` and rounded to `dtype`.
struct TextEncoderNormParameters: Sendable {
    let weight: Tensor
    let bias: Tensor?

    init(_ name: String, width: Int, hasBias: Bool, reader: WeightReader, dtype: DType) throws {
        weight = try Self.rounded(reader.tensor("\(name).weight", shape: [width], dtypes: parameterDTypes), dtype, "\(name).weight")
        bias = hasBias ? try Self.rounded(reader.tensor("\(name).bias", shape: [width], dtypes: parameterDTypes), dtype, "\(name).bias") : nil
    }

    private static func rounded(_ tensor: Tensor, _ dtype: DType, _ context: String) throws -> Tensor {
        Tensor.rounding(try parameterValues(tensor, dtype, context), shape: tensor.shape, to: dtype)
    }
}

/// A token-embedding table `[rows, width]`, kept as the checkpoint holds it; looked-up rows are rounded to the
/// compute dtype.
struct TextEncoderEmbedding: Sendable {
    let name: String
    let rows: Int
    let width: Int
    let table: Tensor
    let dtype: DType

    init(_ name: String, rows: Int, width: Int, reader: WeightReader, dtype: DType) throws {
        self.name = name
        self.rows = rows
        self.width = width
        self.dtype = dtype
        table = reader.tensor(name, shape: [rows, width], dtypes: parameterDTypes)
    }

    /// The rows for `ids` (each checked to be in range), as `[ids.count · width]` values.
    func lookup(_ ids: [Int]) throws -> [Float] {
        var values = [Float]()
        values.reserveCapacity(ids.count * width)
        for (position, id) in ids.enumerated() {
            guard (0..<rows).contains(id) else {
                throw NunchakuError.invalidArgument(
                    context: name, reason: "token id \(id) at position \(position) is outside 0..<\(rows)")
            }
            values.append(contentsOf: try parameterValues(table.slice(rows: id..<(id + 1)), dtype, name))
        }
        return values
    }
}

/// Checks that `tokenIDs` is a non-empty batch of equally long, non-empty rows and returns (batch, tokens).
func tokenBatchShape(_ tokenIDs: [[Int]], context: String) throws -> (batch: Int, tokens: Int) {
    guard let tokens = tokenIDs.first?.count, tokens > 0 else {
        throw NunchakuError.invalidArgument(context: context, reason: "needs at least one non-empty row of token ids")
    }
    for (row, ids) in tokenIDs.enumerated() where ids.count != tokens {
        throw NunchakuError.invalidArgument(
            context: context, reason: "row \(row) has \(ids.count) token ids, row 0 has \(tokens); pad every row to one length")
    }
    return (tokenIDs.count, tokens)
}

/// The checkpoint dtypes parameters may have.
let parameterDTypes: [DType] = [.f32, .bf16, .f16, .f64]

/// A parameter's values rounded to `dtype` (f32, bf16 or f16).
func parameterValues(_ tensor: Tensor, _ dtype: DType, _ context: String) throws -> [Float] {
    guard cpuActivationDTypes.contains(dtype) else {
        throw NunchakuError.dtypeMismatch(context: context, expected: cpuActivationDTypes, actual: dtype)
    }
    let widened = tensor.dtype == .f64 ? tensor.converted(to: .f32) : tensor
    let values = try widened.floatValues(context: context)
    return widened.dtype == dtype || dtype == .f32 ? values
        : try Tensor.rounding(values, shape: tensor.shape, to: dtype).floatValues(context: context)
}

/// Element-wise combinations of same-shaped activations, rounded once to the first operand's dtype.
enum TextEncoderElementwise {
    /// `a + b` (a residual connection).
    static func add(_ a: Tensor, _ b: Tensor, context: String) throws -> Tensor {
        try combine(a, b, context: context, +)
    }

    /// `a ⊙ b` (a gated feed-forward's product).
    static func multiply(_ a: Tensor, _ b: Tensor, context: String) throws -> Tensor {
        try combine(a, b, context: context, *)
    }

    /// `x · sigmoid(1.702 · x)`, CLIP's quick_gelu, evaluated in `Double`.
    static func quickGELU(_ x: Tensor, context: String) throws -> Tensor {
        let values = try x.floatValues(context: context).map { value -> Float in
            let z = Double(value)
            return Float(z / (1 + Foundation.exp(-1.702 * z)))
        }
        return Tensor.rounding(values, shape: x.shape, to: x.dtype)
    }

    private static func combine(_ a: Tensor, _ b: Tensor, context: String, _ operation: (Float, Float) -> Float) throws -> Tensor {
        guard a.shape == b.shape else { throw NunchakuError.shapeMismatch(context: context, expected: a.shape, actual: b.shape) }
        let left = try a.floatValues(context: context)
        let right = try b.floatValues(context: context)
        return Tensor.rounding(zip(left, right).map(operation), shape: a.shape, to: a.dtype)
    }
}
