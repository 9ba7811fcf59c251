/// The bias of an INT4 post-GELU layer (research §3.6, DeepCompressor `nn/patch/linear.py` `ShiftedLinear` and
/// `backend/nunchaku/convert.py`).
///
/// The full-precision layer is rewritten as `y = W·(x + c) + (b − W·c)`; smoothing, low-rank and quantization act on
/// the shifted input, but the runtime's low-rank branch sees the unshifted x, so `L·c = projUp·projDownᵀ·c` is added
/// back: stored bias = `b − W·c + projUp·projDownᵀ·c`, with W the full-precision weight. Computed in `Double`.
enum ShiftCorrection {
    static func bias(
        _ bias: [Float]?, weight: [Float], projDown: [Float], projUp: [Float],
        outFeatures: Int, inFeatures: Int, rank: Int, shift: Float
    ) -> [Float] {
        let c = Double(shift)
        // projDownᵀ·c: the shift vector is c in every channel.
        var downSums = [Double](repeating: 0, count: rank)
        for column in 0..<inFeatures {
            for j in 0..<rank { downSums[j] += Double(projDown[column * rank + j]) * c }
        }
        return (0..<outFeatures).map { row in
            var weightSum = 0.0
            for column in 0..<inFeatures { weightSum += Double(weight[row * inFeatures + column]) }
            var lowRank = 0.0
            for j in 0..<rank { lowRank += Double(projUp[row * rank + j]) * downSums[j] }
            return Float(Double(bias?[row] ?? 0) - weightSum * c + lowRank)
        }
    }
}
