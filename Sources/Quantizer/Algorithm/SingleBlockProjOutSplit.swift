import NunchakuCore

/// One plain linear: weight [outFeatures, inFeatures] row-major and bias [outFeatures].
public struct LinearWeights: Sendable, Equatable {
    public let weight: [Float]
    public let bias: [Float]
    public let outFeatures: Int
    public let inFeatures: Int

    public init(weight: [Float], bias: [Float], outFeatures: Int, inFeatures: Int) {
        self.weight = weight
        self.bias = bias
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
    }
}

/// FLUX single blocks: the diffusers `proj_out` (input = attention output ‖ MLP activation) becomes two W4A4 linears
/// (research §1.4, DeepCompressor `ConcatLinear`): `out_proj` = columns 0..<hidden with a zero bias, and `mlp_fc2` =
/// the remaining columns with the real bias; their outputs are summed.
public enum SingleBlockProjOutSplit {
    /// Splits `projOut` ([hidden, hidden + mlpHidden]) after column `hidden`.
    /// - Throws: `NunchakuError` when the sizes do not fit.
    public static func split(_ projOut: LinearWeights, hidden: Int) throws -> (outProj: LinearWeights, mlpFC2: LinearWeights) {
        let rows = projOut.outFeatures, columns = projOut.inFeatures
        guard projOut.weight.count == rows * columns, projOut.bias.count == rows else {
            throw NunchakuError.shapeMismatch(
                context: "single-block proj_out", expected: [rows, columns, rows],
                actual: [projOut.weight.count, projOut.bias.count])
        }
        guard hidden > 0, hidden < columns else {
            throw NunchakuError.invalidArgument(
                context: "single-block proj_out",
                reason: "split column \(hidden) must lie strictly inside the \(columns) input features")
        }
        var attention: [Float] = [], mlp: [Float] = []
        attention.reserveCapacity(rows * hidden)
        mlp.reserveCapacity(rows * (columns - hidden))
        for row in 0..<rows {
            let base = row * columns
            attention.append(contentsOf: projOut.weight[base..<(base + hidden)])
            mlp.append(contentsOf: projOut.weight[(base + hidden)..<(base + columns)])
        }
        return (
            LinearWeights(weight: attention, bias: [Float](repeating: 0, count: rows), outFeatures: rows, inFeatures: hidden),
            LinearWeights(weight: mlp, bias: projOut.bias, outFeatures: rows, inFeatures: columns - hidden)
        )
    }
}
