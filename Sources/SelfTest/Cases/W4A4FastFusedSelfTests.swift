import CUDABackend
import NunchakuCore
import SVDQuant

/// `w4a4.fast.quantize_lowrank`: the fused pass of the fast W4A4 path (`CUDASVDQW4A4FastLinear.quantizeFused`: the
/// low-rank down-projection on the tensor cores and the quantization, one read of x) against the CPU reference
/// (`W4A4FastReference.lowRank`, then `.quantize`), on fresh random inputs into poisoned outputs, ranks 16–256.
/// The low-rank sums are added in other orders on the two sides, so a low-rank value can round to a neighbouring
/// 16-bit value: its code may then differ by one e4m3 step, and when it is the row's largest, the row's amax and so
/// its codes move by up to one step (even where the stored scale `amax / 448` rounds to the same float). Checked:
/// every code within one step of the reference and the padding zero (a failure otherwise); the dequantized rows
/// within 1e-2 of the reference (one e4m3 step is 6–12 % of one value; random codes fail by far). The note counts
/// the rows with another scale and the codes one step off.
enum W4A4FastFusedSelfTests {
    static let cases: [SelfTestCase] = {
        var cases: [SelfTestCase] = []
        for m in [1, 333, 4608] { cases.append(fused(.int4(3072, 3072), .bf16, m: m)) }
        cases.append(fused(.int4(3072, 12288, unsigned: true), .bf16, m: 333))
        for rank in [16, 64, 128, 256] { cases.append(fused(.int4(3072, 3072, rank: rank), .bf16, m: 333)) }
        cases.append(fused(.int4(3072, 3072), .f16, m: 333))
        cases.append(fused(.nvfp4(3072, 3072), .bf16, m: 4608))
        return cases
    }()

    static func fused(_ layer: W4A4SelfTestLayer, _ dtype: DType, m: Int) -> SelfTestCase {
        let shapeText = "\(layer.precision) M=\(m) K=\(layer.inFeatures) R=\(layer.rank)" + (layer.unsigned ? " unsigned" : "")
        return SelfTestCase(kernel: "w4a4.fast.quantize_lowrank", dtype: dtype, shape: shapeText, tolerance: 1e-2) { env in
            let (gpu, _) = try W4A4FastSelfTests.layer(layer, dtype, env)
            let p = gpu.parameters
            let (k, depth) = (p.inFeatures, p.gemmDepth)
            let x = env.randomTensor([m, k], dtype, in: layer.inputRange)
            let gpuX = try env.upload(x)
            let codes = try DeviceTensor(shape: [m, depth], dtype: .u8, context: env.context, stream: env.stream)
            let scales = try env.poisonedOutput([m], .f32)
            try env.poison(codes)
            let launch = { try gpu.quantizeFused(gpuX, into: (codes, scales), stream: env.stream) }
            try launch()
            var comparison = SelfTestComparison()
            let gpuScales = try env.download(scales)
            let gpuCodes = try codes.download(stream: env.stream)
            comparison.count(try SelfTestOutput(W4A4FastSelfTests.decoded(gpuCodes)))
            let rows = SelfTestRows.sample(from: m, maximum: W4A4FastSelfTests.comparedRows, random: &env.random)
            let xRows = try W4A4SelfTestData.rows(x.tensor, rows).floats()
            let reference = W4A4FastReference.quantize(
                xRows, lowRank: W4A4FastReference.lowRank(xRows, rows: rows.count, p), rows: rows.count, p)
            let gpuRows = try W4A4SelfTestData.rows(gpuCodes, rows).withUnsafeBytes { Array($0) }
            var rescaledRows = 0, inputSteps = 0, lowRankSteps = 0
            for (index, row) in rows.enumerated() {
                if gpuScales.values[row] != reference.scales[index] { rescaledRows += 1 }
                for column in 0..<depth {
                    let (code, referenceCode) = (gpuRows[index * depth + column], reference.codes[index * depth + column])
                    let step = abs(Self.ordinal(code) - Self.ordinal(referenceCode))
                    guard step <= 1, column < k + p.rank || code == 0 else {
                        throw NunchakuError.invalidArgument(
                            context: "w4a4.fast.quantize_lowrank", reason: "row \(row) column \(column): code \(code), reference \(referenceCode)")
                    }
                    if column < k { inputSteps += step } else { lowRankSteps += step }
                }
            }
            let referenceValues = (0..<(rows.count * depth)).map { FloatFormats.float(e4m3fn: reference.codes[$0]) * reference.scales[$0 / depth] }
            let gpuValues = (0..<(rows.count * depth)).map { FloatFormats.float(e4m3fn: gpuRows[$0]) * gpuScales.values[rows[$0 / depth]] }
            try comparison.compare(SelfTestOutput(Tensor(gpuValues, shape: [rows.count, depth])), with: referenceValues)
            let bytes = Double(m * k * dtype.byteCount(forElements: 1) + m * depth + m * 4)
            return SelfTestOutcome(comparison: comparison, milliseconds: try env.time(launch), bytes: bytes,
                                   note: "rows with another scale \(rescaledRows), codes one step off: input \(inputSteps), low-rank \(lowRankSteps); "
                                       + (W4A4SelfTests.rowsNote(rows.count, m) ?? "all rows"))
        }
    }

    /// The position of an e4m3 code on the number line in steps (sign-magnitude: −0 and +0 are both 0).
    static func ordinal(_ code: UInt8) -> Int { code & 0x80 != 0 ? -Int(code & 0x7F) : Int(code) }
}
