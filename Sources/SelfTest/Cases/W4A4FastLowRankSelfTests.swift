import CUDABackend
import NunchakuCore
import SVDQuant

/// `w4a4.fast.lowrank`: step 1 of the fast W4A4 path (`CUDASVDQW4A4FastLinear.lowRank`: w4a4_fp8_lowrank_down.cu for
/// few rows, cuBLASLt for many, `lowRankDownLaunch`) on fresh random inputs into a poisoned output, against a float64
/// reference on sampled rows. The GPU adds fp32 products in its own order, so each value must lie within one 16-bit
/// step of the exact sum plus the worst-case fp32 summation error K · 2⁻²⁴ · Σ|x·p| (a failure otherwise; that bound
/// is tiny except where the sum nearly cancels); the relative error against `W4A4FastReference.lowRank` (fp32 sums,
/// rounded) is the comparison's, within 1e-2. Shapes: FLUX's text stream (M = 512), image stream (4096, 4608), K =
/// 3072 and 12288, M = 1 and 333 with R = 16–256, bf16 and f16.
enum W4A4FastLowRankSelfTests {
    static let cases: [SelfTestCase] = {
        var cases: [SelfTestCase] = []
        for m in [1, 512, 4096, 4608] { cases.append(lowRank(.int4(3072, 128), .bf16, m: m)) }
        for m in [1, 512, 4608] { cases.append(lowRank(.int4(12288, 128, unsigned: true), .bf16, m: m)) }
        for rank in [16, 48, 64, 128, 256] { cases.append(lowRank(.int4(3072, 128, rank: rank), .bf16, m: 333)) }
        cases.append(lowRank(.int4(3072, 128, rank: 48), .f16, m: 333))
        cases.append(lowRank(.int4(3072, 128), .f16, m: 512))
        return cases
    }()

    static func lowRank(_ layer: W4A4SelfTestLayer, _ dtype: DType, m: Int) -> SelfTestCase {
        let shapeText = "M=\(m) K=\(layer.inFeatures) R=\(layer.rank)"
        return SelfTestCase(kernel: "w4a4.fast.lowrank", dtype: dtype, shape: shapeText, tolerance: 1e-2) { env in
            let (gpu, _) = try W4A4FastSelfTests.layer(layer, dtype, env)
            let p = gpu.parameters
            let (k, r) = (p.inFeatures, p.rank)
            let x = env.randomTensor([m, k], dtype, in: layer.inputRange)
            let gpuX = try env.upload(x)
            let output = try env.poisonedOutput([m, r], dtype)
            let launch = { try gpu.lowRank(gpuX, into: output, stream: env.stream) }
            try launch()
            let result = try env.download(output)
            let rows = SelfTestRows.sample(from: m, maximum: W4A4FastSelfTests.comparedRows, random: &env.random)
            let xRows = try W4A4SelfTestData.rows(x.tensor, rows).floats()
            let fractionBits = dtype == .bf16 ? 7 : 10
            var stepsOff = 0
            for (index, row) in rows.enumerated() {
                for column in 0..<r {
                    var exact = 0.0, magnitude = 0.0
                    for i in 0..<k {
                        let product = Double(xRows[index * k + i]) * Double(p.projDownTransposed[column * k + i])
                        exact += product
                        magnitude += abs(product)
                    }
                    let value = Double(result.values[row * r + column])
                    let spacing = exact == 0 ? 0x1p-24 : max(0x1p-24, Double(sign: .plus, exponent: exact.exponent - fractionBits, significand: 1))
                    guard abs(value - exact) <= spacing + Double(k) * 0x1p-24 * magnitude else {
                        throw NunchakuError.invalidArgument(
                            context: "w4a4.fast.lowrank", reason: "row \(row) column \(column): \(value), exact sum \(exact)")
                    }
                    if Double(p.type.round(exact)) != value { stepsOff += 1 }
                }
            }
            var comparison = SelfTestComparison()
            try comparison.compare(result, rows: rows, width: r, with: W4A4FastReference.lowRank(xRows, rows: rows.count, p))
            let path = CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: m, inFeatures: k, rank: r).map { "kernel, \($0.rowsPerBlock) rows × \($0.warps) warps" }
                ?? "cuBLASLt"
            return SelfTestOutcome(comparison: comparison, milliseconds: try env.time(launch),
                                   bytes: Double((m * k + r * k + m * r) * dtype.byteCount(forElements: 1)),
                                   note: "\(path); values not the rounded exact sum \(stepsOff); "
                                       + (W4A4SelfTests.rowsNote(rows.count, m) ?? "all rows"))
        }
    }
}
