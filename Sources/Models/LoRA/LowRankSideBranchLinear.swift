import CPUBackend
import NunchakuCore
import SVDQuant

/// A layer plus a LoRA side branch on the CPU, for layers whose own low-rank branch cannot take the ranks (dense and
/// AWQ layers): `y = round(base(x) + round(round(x·downᵀ)·upᵀ))`, each product accumulated in fp32 and rounded once to
/// the activation dtype (nothing is rounded in f32). The GPU side branch does the same steps (two GEMMs and an add).
struct LowRankSideBranchLinear: LinearLayer {
    let base: any LinearLayer
    /// `[rank, K]` and `[N, rank]`, rounded to the compute dtype once (as the GPU holds them).
    let down: [Float]
    let up: [Float]
    let rank: Int

    var name: String { base.name }
    var inFeatures: Int { base.inFeatures }
    var outFeatures: Int { base.outFeatures }

    init(base: any LinearLayer, branch: LowRankBranch, parameterDType: DType) {
        self.base = base
        rank = branch.rank
        down = Self.rounded(branch.down, parameterDType)
        up = Self.rounded(branch.up, parameterDType)
    }

    func forward(_ x: Tensor) throws -> Tensor {
        let y = try base.forward(x)
        let rows = y.shape[0]
        let input = try x.floatValues(context: name)
        let t = Self.rounded(Matmul.multiplyTransposed(input, down, m: rows, n: rank, k: inFeatures), x.dtype)
        let u = Tensor.rounding(Matmul.multiplyTransposed(t, up, m: rows, n: outFeatures, k: rank), shape: y.shape, to: x.dtype)
        return try CPUOps.add(y, u)
    }

    private static func rounded(_ values: [Float], _ dtype: DType) -> [Float] {
        dtype == .f32 ? values : Tensor.rounding(values, shape: [values.count], to: dtype).floats()
    }
}

extension SVDQW4A4Weights {
    /// The layer with `branch` concatenated onto its low-rank branch (Nunchaku's LoRA merge, research §6 step 3):
    /// `proj_down` gains `branch.down`ᵀ as new columns, `proj_up` gains `branch.up` as new columns, both rounded to
    /// the weights' 16-bit type. The low-rank branch sees the unsmoothed input (research §3.3), so the LoRA's down
    /// needs no smoothing compensation. The 4-bit weights are unchanged.
    /// - Throws: `NunchakuError` when the branch's shape does not fit the layer.
    func appendingLowRank(_ branch: LowRankBranch) throws -> SVDQW4A4Weights {
        guard branch.inFeatures == inFeatures, branch.outFeatures == outFeatures else {
            throw NunchakuError.invalidArgument(
                context: name, reason: "a LoRA branch \(branch.inFeatures) → \(branch.outFeatures) does not fit the layer \(inFeatures) → \(outFeatures)")
        }
        var tensors = canonical
        (tensors.projDown, tensors.projUp) = branch.appended(toDown: canonical.projDown, up: canonical.projUp, dtype: weightDType.dtype)
        return try SVDQW4A4Weights(name: name, tensors: tensors, layout: .canonical(vectorOrder: .natural), actUnsigned: actUnsigned)
    }
}
