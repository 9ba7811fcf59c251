import CPUBackend
import NunchakuCore

/// A low-rank branch on one layer, `Δy = up · (down · x)`: `down` `[rank, inFeatures]`, `up` `[outFeatures, rank]`,
/// row-major `Float`, ranks padded to a multiple of 16 with zero rows and columns (the W4A4 kernels work in 16-rank
/// tiles). `up`'s rows are in the layer's output order.
public struct LowRankBranch: Sendable, Equatable {
    public let rank: Int
    public let inFeatures: Int
    public let outFeatures: Int
    public let down: [Float]
    public let up: [Float]

    /// The rank tile: every branch's rank is a multiple of it.
    public static let rankTile = 16

    init(rank: Int, inFeatures: Int, outFeatures: Int, down: [Float], up: [Float]) {
        precondition(rank % Self.rankTile == 0 && down.count == rank * inFeatures && up.count == outFeatures * rank)
        self.rank = rank
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.down = down
        self.up = up
    }

    /// The same branch with `up` multiplied by `factor` (a LoRA's strength).
    func scaled(by factor: Float) -> LowRankBranch {
        factor == 1 ? self : LowRankBranch(rank: rank, inFeatures: inFeatures, outFeatures: outFeatures, down: down, up: up.map { $0 * factor })
    }

    /// The branches side by side along the rank: downs stacked, ups placed next to each other. All must have the
    /// same in and out features; nil for none.
    static func concatenating(_ branches: [LowRankBranch]) -> LowRankBranch? {
        guard let first = branches.first else { return nil }
        if branches.count == 1 { return first }
        let rank = branches.reduce(0) { $0 + $1.rank }, n = first.outFeatures
        var up = [Float](repeating: 0, count: n * rank)
        var offset = 0
        for branch in branches {
            for row in 0..<n {
                for r in 0..<branch.rank { up[row * rank + offset + r] = branch.up[row * branch.rank + r] }
            }
            offset += branch.rank
        }
        return LowRankBranch(rank: rank, inFeatures: first.inFeatures, outFeatures: n, down: branches.flatMap(\.down), up: up)
    }

    /// An SVDQuant low-rank branch (canonical `down` [K, R], `up` [N, R]) with this branch's ranks appended as new
    /// columns (`self.down` transposed), both rounded to `dtype`: Nunchaku's LoRA merge (research §6 step 3).
    func appended(toDown down: Tensor, up: Tensor, dtype: DType) -> (down: Tensor, up: Tensor) {
        let k = inFeatures, n = outFeatures, own = down.shape[1], total = own + rank
        let oldDown = down.contiguous().floats(), oldUp = up.contiguous().floats()
        var newDown = [Float](repeating: 0, count: k * total), newUp = [Float](repeating: 0, count: n * total)
        for column in 0..<k {
            for r in 0..<own { newDown[column * total + r] = oldDown[column * own + r] }
            for r in 0..<rank { newDown[column * total + own + r] = self.down[r * k + column] }
        }
        for row in 0..<n {
            for r in 0..<own { newUp[row * total + r] = oldUp[row * own + r] }
            for r in 0..<rank { newUp[row * total + own + r] = self.up[row * rank + r] }
        }
        return (Tensor.rounding(newDown, shape: [k, total], to: dtype), Tensor.rounding(newUp, shape: [n, total], to: dtype))
    }

    /// Pads `rank` up to a multiple of 16.
    static func paddedRank(_ rank: Int) -> Int { (rank + rankTile - 1) / rankTile * rankTile }
}
