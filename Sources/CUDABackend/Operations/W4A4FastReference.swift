import CPUBackend
import NunchakuCore
import SVDQuant

/// The CPU reference of the fast (FP8) W4A4 path, step for step what the GPU layer computes
/// (`CUDASVDQW4A4FastLinear`; kernels w4a4_fp8_quantize.cu and w4a4_fp8_weights.cu; cuBLASLt's FP8 GEMM):
///
/// 1. quantize, per row: `t = (x [+ 0.171875]) · inverseSmooth`, `amax = max |t|`, `scale = amax / 448`, codes
///    `e4m3(t · (448 / amax))`, zero-padded to `gemmDepth` ([M, depth]). Layers with the same K, shift and smoothing
///    get the same codes, so a shared pass (`CUDAW4A4FastSharedInput`) is this step once;
/// 2. fold the weights: `e4m3(fma(v, s · f, L) · inverseUnit)` with `L = Σ_r projUp · smoothedProjDown` in fp32
///    (`W4A4FastParameters`), zeros past K ([N, depth]);
/// 3. multiply: `y = round(Σ codes·weights · scale[m] · channelScales[n] + bias)`, the sum in fp32.
/// Step 1 is bit-identical on the GPU. Step 2 is too but for the order in which the GPU's tensor cores add L's
/// terms: a weight code may be one e4m3 step apart where the two sums round to either side of a rounding boundary.
/// Step 3 differs by fp32 summation order.
public enum W4A4FastReference {
    /// Step 1 on `rows` rows of `x` ([M, K] values of the activation dtype): codes [M, depth] and per-row scales [M].
    public static func quantize(_ x: [Float], rows: Int, _ p: W4A4FastParameters) -> (codes: [UInt8], scales: [Float]) {
        let k = p.inFeatures, depth = p.gemmDepth
        var codes = [UInt8](repeating: 0, count: rows * depth)
        var scales = [Float](repeating: 0, count: rows)
        var values = [Float](repeating: 0, count: k)
        for row in 0..<rows {
            var amax: Float = 0
            for column in 0..<k {
                let input = x[row * k + column]
                values[column] = (p.shifted ? input + W4A4FastParameters.inputShift : input) * p.inverseSmooth[column]
                amax = max(amax, abs(values[column]))
            }
            let factor: Float = amax > 0 ? 448 / amax : 0
            scales[row] = amax / 448
            for column in 0..<k {
                codes[row * depth + column] = FloatFormats.e4m3fnBits(values[column] * factor, saturating: true)
            }
        }
        return (codes, scales)
    }

    /// Step 2: the folded weight codes [N, depth] from the canonical `qweight` [N, K/2] (low nibble first).
    public static func foldedWeights(_ qweight: Tensor, _ p: W4A4FastParameters) -> [UInt8] {
        let n = p.outFeatures, k = p.inFeatures, r = p.rank, depth = p.gemmDepth, groupSize = p.groupSize
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
                    let factor = p.rowFactors[row], inverseUnit = p.inverseUnits[row]
                    for column in 0..<k {
                        var lowRank: Float = 0
                        for index in 0..<r { lowRank += p.projUp[row * r + index] * p.smoothedProjDown[column * r + index] }
                        let byte = bytes[(row * k + column) / 2]
                        let value = values[Int(column % 2 == 0 ? byte & 0xF : byte >> 4)]
                        let scale = p.groupScales[(column / groupSize) * n + row] * factor
                        folded[row * depth + column] = FloatFormats.e4m3fnBits(lowRank.addingProduct(value, scale) * inverseUnit, saturating: true)
                    }
                }
            }
        }
        return folded
    }

    /// Step 3: [M, N] values of the activation dtype.
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

    /// All three steps on `rows` rows of `x` ([M, K] values of the activation dtype): [M, N].
    public static func forward(_ x: [Float], rows: Int, qweight: Tensor, _ p: W4A4FastParameters) -> [Float] {
        sharedForward(x, rows: rows, layers: [(qweight, p)])[0]
    }

    /// All three steps of layers sharing their input (the same K, shift and smoothing: one quantize) on `rows` rows
    /// of `x`: [M, Nᵢ] per layer.
    public static func sharedForward(_ x: [Float], rows: Int, layers: [(qweight: Tensor, parameters: W4A4FastParameters)]) -> [[Float]] {
        let (codes, scales) = quantize(x, rows: rows, layers[0].parameters)
        return layers.map { multiply(codes: codes, scales: scales, weights: foldedWeights($0.qweight, $0.parameters), rows: rows, $0.parameters) }
    }
}
