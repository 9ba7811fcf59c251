import NunchakuCore

extension CPUOps {
    /// Adaptive-norm modulation: `x · (scaleOffset + scale) + shift`, with `shift` and `scale` given per sample.
    ///
    /// `x` is `[B, S, D]`; `shift` and `scale` are `[B, D]` and broadcast over the S tokens.
    /// `scaleOffset` is 1 for diffusers' `x·(1+scale)+shift`, and 0 for Nunchaku's layers whose bias already holds
    /// the +1 (`x·scale+shift`). Computed in `Float` in the same order as PyTorch (`scaleOffset + scale` first).
    public static func modulate(_ x: Tensor, shift: Tensor, scale: Tensor, scaleOffset: Float = 1) throws -> Tensor {
        let context = "modulate"
        let (batch, tokens, width) = try tokenShape(x, context)
        let shiftValues = try perSample(shift, batch, width, "\(context) shift")
        let scaleValues = try perSample(scale, batch, width, "\(context) scale")
        let input = try x.floatValues(context: context)
        var output = [Float](repeating: 0, count: input.count)
        for sample in 0..<batch {
            for token in 0..<tokens {
                let row = (sample * tokens + token) * width
                for i in 0..<width {
                    let factor = scaleOffset + scaleValues[sample * width + i]
                    output[row + i] = input[row + i] * factor + shiftValues[sample * width + i]
                }
            }
        }
        return Tensor.rounding(output, shape: x.shape, to: x.dtype)
    }

    /// Gated residual add: `residual + gate · y`, with `gate` given per sample.
    ///
    /// `residual` and `y` are `[B, S, D]`; `gate` is `[B, D]` and broadcasts over the S tokens.
    public static func gatedAdd(_ residual: Tensor, gate: Tensor, _ y: Tensor) throws -> Tensor {
        let context = "gatedAdd"
        let (batch, tokens, width) = try tokenShape(residual, context)
        try OpCheck.activation(y, "\(context) y")
        try OpCheck.shape(y, residual.shape, "\(context) y")
        let gateValues = try perSample(gate, batch, width, "\(context) gate")
        let base = try residual.floatValues(context: context)
        let update = try y.floatValues(context: "\(context) y")
        var output = [Float](repeating: 0, count: base.count)
        for sample in 0..<batch {
            for token in 0..<tokens {
                let row = (sample * tokens + token) * width
                for i in 0..<width {
                    output[row + i] = base[row + i] + gateValues[sample * width + i] * update[row + i]
                }
            }
        }
        return Tensor.rounding(output, shape: residual.shape, to: residual.dtype)
    }

    /// Elementwise sum `a + b` of two tensors of one shape, rounded to `a`'s dtype.
    public static func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        let context = "add"
        try OpCheck.activation(a, context)
        try OpCheck.activation(b, "\(context) b")
        try OpCheck.shape(b, a.shape, "\(context) b")
        let left = try a.floatValues(context: context), right = try b.floatValues(context: "\(context) b")
        return Tensor.rounding(zip(left, right).map { $0 + $1 }, shape: a.shape, to: a.dtype)
    }

    /// The `(B, S, D)` of a rank-3 activation tensor.
    static func tokenShape(_ x: Tensor, _ context: String) throws -> (Int, Int, Int) {
        try OpCheck.activation(x, context)
        try OpCheck.rank(x, 3, context)
        return (x.shape[0], x.shape[1], x.shape[2])
    }

    /// The values of a per-sample `[B, D]` operand in any float dtype.
    private static func perSample(_ tensor: Tensor, _ batch: Int, _ width: Int, _ context: String) throws -> [Float] {
        try OpCheck.activation(tensor, context)
        try OpCheck.shape(tensor, [batch, width], context)
        return try tensor.floatValues(context: context)
    }
}
