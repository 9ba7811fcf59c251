import NunchakuCore

/// Checks shared by the layers' `forward`: activations are [..., inFeatures], flattened to rows.
enum LinearInput {
    /// The number of rows of `x` (the product of all but its last dimension).
    /// - Throws: `NunchakuError` naming the layer when the dtype is not allowed or the last dimension differs.
    static func rows(_ x: Tensor, inFeatures: Int, layer: String, allowed: [DType]) throws -> Int {
        try LayoutCheck.dtype(x, allowed, "\(layer) input")
        guard x.rank >= 1, x.shape.last == inFeatures, x.elementCount > 0 else {
            throw NunchakuError.invalidArgument(
                context: "\(layer) input", reason: "expected a non-empty shape [..., \(inFeatures)], got \(x.shape)")
        }
        return x.elementCount / inFeatures
    }

    /// The output shape: `x`'s leading dimensions, then `outFeatures`.
    static func outputShape(_ x: Tensor, outFeatures: Int) -> [Int] {
        Array(x.shape.dropLast()) + [outFeatures]
    }
}
