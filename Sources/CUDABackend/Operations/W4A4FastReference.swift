import CPUBackend
import NunchakuCore
import SVDQuant

/// The CPU reference of the fast (FP8) W4A4 path, step for step what the GPU layer computes
/// (`CUDASVDQW4A4FastLinear`; kernels w4a4_fp8_quantize.cu and w4a4_fp8_weights.cu; cuBLASLt's FP8 GEMM):
///
/// 1. `lowRank = round(x · proj_down)` (fp32 sums, rounded to the activation dtype);
/// 2. per row: `t = (x [+ 0.171875]) · inverseSmooth`, `l = lowRank · inverseBeta`, `amax = max(|t|, |l|)`,
///    `scale = amax / 448`, codes `e4m3((t ‖ l) · (448 / amax))`, zero-padded to `gemmDepth` ([M, depth]; `l` at
///    `firstLowRankColumn`, zeros in the other layers' low-rank columns). Layers sharing one activation pass
///    (`CUDAW4A4FastSharedInput`): `sharedQuantize`, one amax over `t` and every layer's `l`;
/// 3. weights: `e4m3(q · (s[g, n] / u[n]))` (NVFP4: `e4m3(2e · (s[g, n] · (0.5 / u[n])))`) ‖ `upCodes` (at
///    `firstLowRankColumn`) ‖ zeros ([N, depth]);
/// 4. `y = round(Σ codes·weights · scale[m] · c[n] + bias)`, the sum in fp32.
/// Steps 2 and 3 are bit-identical on the GPU; steps 1 and 4 differ only by fp32 summation order.
public enum W4A4FastReference {
    /// Step 1 on `rows` rows of `x` ([M, K] values of the activation dtype).
    public static func lowRank(_ x: [Float], rows: Int, _ p: W4A4FastParameters) -> [Float] {
        guard p.rank > 0 else { return [] }
        return Matmul.multiplyTransposed(x, p.projDownTransposed, m: rows, n: p.rank, k: p.inFeatures).map { p.type.round($0) }
    }

    /// Step 2: codes [M, depth] and per-row scales [M].
    public static func quantize(_ x: [Float], lowRank: [Float], rows: Int, _ p: W4A4FastParameters) -> (codes: [UInt8], scales: [Float]) {
        sharedQuantize(x, lowRanks: [lowRank], rows: rows, [p])
    }

    /// Step 2 of layers sharing their input (`layers`: the same K, smoothing, shift and `gemmDepth`, each with its
    /// own low-rank columns, `lowRanks[i]` [M, Rᵢ] from step 1): one row of codes [M, depth] and one scale [M] for
    /// all of them, the amax taken over `t` and every layer's `l`.
    public static func sharedQuantize(_ x: [Float], lowRanks: [[Float]], rows: Int, _ layers: [W4A4FastParameters])
        -> (codes: [UInt8], scales: [Float]) {
        let p = layers[0], k = p.inFeatures, depth = p.gemmDepth
        var codes = [UInt8](repeating: 0, count: rows * depth)
        var scales = [Float](repeating: 0, count: rows)
        var values = [Float](repeating: 0, count: depth)
        for row in 0..<rows {
            var amax: Float = 0
            for column in 0..<k {
                let input = x[row * k + column]
                values[column] = (p.shifted ? input + 0.171875 : input) * p.inverseSmooth[column]
            }
            for (layer, lowRank) in zip(layers, lowRanks) {
                let r = layer.rank, first = layer.firstLowRankColumn
                for column in 0..<r { values[first + column] = lowRank[row * r + column] * layer.inverseBeta[column] }
            }
            for value in values { amax = max(amax, abs(value)) }
            let factor: Float = amax > 0 ? 448 / amax : 0
            scales[row] = amax / 448
            for column in 0..<depth {
                codes[row * depth + column] = FloatFormats.e4m3fnBits(values[column] * factor, saturating: true)
            }
        }
        return (codes, scales)
    }

    /// Step 3: the folded weight codes [N, depth] from the canonical `qweight` [N, K/2] (low nibble first): INT4
    /// `e4m3(q · (s / u))`, NVFP4 `e4m3(2e · (s · (0.5 / u)))` (`W4A4FastParameters`), then `upCodes` at
    /// `firstLowRankColumn`, zeros elsewhere.
    public static func foldedWeights(_ qweight: Tensor, _ p: W4A4FastParameters) -> [UInt8] {
        let n = p.outFeatures, k = p.inFeatures, r = p.rank, depth = p.gemmDepth, groupSize = p.groupSize, first = p.firstLowRankColumn
        let values: [Float] = (0..<16).map { code in
            switch p.precision {
            case .int4: Float(Int8(bitPattern: UInt8(code) << 4) >> 4)
            case .nvfp4: Float(Int(2 * FloatFormats.float(e2m1: UInt8(code))))  // −0 becomes +0, as on the GPU
            }
        }
        var folded = [UInt8](repeating: 0, count: n * depth)
        let codes = qweight.contiguous()
        codes.withUnsafeBytes { bytes in
            folded.withUnsafeMutableBufferPointer { folded in
                parallelFor(n) { row in
                    let unit = p.weightUnits[row]
                    for column in 0..<k {
                        let byte = bytes[(row * k + column) / 2]
                        let value = values[Int(column % 2 == 0 ? byte & 0xF : byte >> 4)]
                        let scale = p.groupScales[(column / groupSize) * n + row]
                        let ratio: Float
                        switch p.precision {
                        case .int4: ratio = unit > 0 ? scale / unit : 0
                        case .nvfp4: ratio = scale * (0.5 / unit)
                        }
                        folded[row * depth + column] = FloatFormats.e4m3fnBits(value * ratio, saturating: true)
                    }
                    for column in 0..<r { folded[row * depth + first + column] = p.upCodes[row * r + column] }
                }
            }
        }
        return folded
    }

    /// Step 4: [M, N] values of the activation dtype.
    public static func multiply(codes: [UInt8], scales: [Float], weights: [UInt8], rows: Int, _ p: W4A4FastParameters) -> [Float] {
        let n = p.outFeatures, depth = p.gemmDepth
        let a = codes.map { FloatFormats.float(e4m3fn: $0) }
        let b = weights.map { FloatFormats.float(e4m3fn: $0) }
        var y = Matmul.multiplyTransposed(a, b, m: rows, n: n, k: depth)
        for row in 0..<rows {
            for column in 0..<n {
                let scaled = y[row * n + column] * scales[row] * p.channelScales[column]
                y[row * n + column] = p.type.round(scaled + (p.bias?[column] ?? 0))
            }
        }
        return y
    }

    /// All four steps on `rows` rows of `x` ([M, K] values of the activation dtype): [M, N].
    public static func forward(_ x: [Float], rows: Int, qweight: Tensor, _ p: W4A4FastParameters) -> [Float] {
        sharedForward(x, rows: rows, layers: [(qweight, p)])[0]
    }

    /// All four steps of layers sharing their input (`sharedQuantize`) on `rows` rows of `x`: [M, Nᵢ] per layer.
    public static func sharedForward(_ x: [Float], rows: Int, layers: [(qweight: Tensor, parameters: W4A4FastParameters)]) -> [[Float]] {
        let parameters = layers.map(\.parameters)
        let (codes, scales) = sharedQuantize(x, lowRanks: parameters.map { lowRank(x, rows: rows, $0) }, rows: rows, parameters)
        return layers.map { multiply(codes: codes, scales: scales, weights: foldedWeights($0.qweight, $0.parameters), rows: rows, $0.parameters) }
    }
}
