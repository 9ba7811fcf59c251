import CUDABackend
import NunchakuCore

/// `attention.fp8.codes`: the float8 attention writing the fast W4A4 input of the layers that read its output
/// (`CUDAContext.attentionFP8(_:keyMask:codes:tables:splitToken:)`, Hopper only) on fresh random q, k, v and random
/// INT4 layers (their smoothing; two tables split at a token, as a double block's text and image rows). The same
/// operands also run through the 16-bit output kernel; `AttentionFP8CodesReference.quantize` of that output must give
/// the codes and scales bit for bit (tolerance 1e-6 on the dequantized values: one differing code fails; every byte
/// poisoned first). The case also fails when a reference value passes 448 before saturation (the bound did not
/// hold). The note compares the codes' error against the 16-bit values with the per-token amax codes of the layer's
/// own pass (`W4A4FastReference.quantize`), and the time of the 16-bit output kernel on the same operands.
enum AttentionFP8CodesSelfTests {
    static let cases: [SelfTestCase] = [
        codes(.bf16, batch: 1, heads: SelfTestShapes.fluxHeads, tokens: SelfTestShapes.fluxTokens, splitToken: 512),
        codes(.bf16, batch: 2, heads: 3, tokens: 333, splitToken: 100),
        codes(.f16, batch: 1, heads: 2, tokens: 200, splitToken: 0),
    ]

    static func codes(_ dtype: DType, batch: Int, heads: Int, tokens: Int, splitToken: Int) -> SelfTestCase {
        let d = AttentionFP8Launch.headDim, width = heads * d
        let label = "B=\(batch) H=\(heads) S=\(tokens) d=\(d) split \(splitToken)"
        return SelfTestCase(kernel: "attention.fp8.codes", dtype: dtype, shape: label, tolerance: 1e-6) { env in
            try env.requireFP8Attention()
            let layers = try (0..<(splitToken > 0 ? 2 : 1)).map { _ in try W4A4FastSelfTests.layer(.int4(width, 128), dtype, env).gpu }
            let tables = try layers.map { try AttentionFP8CodesTable(layer: $0, heads: heads, stream: env.stream) }
            let shape = [batch, tokens, heads, d]
            let inputs = [env.randomTensor(shape, dtype, in: -2...2), env.randomTensor(shape, dtype, in: -2...2), env.randomTensor(shape, dtype, in: -3...3)]
            let heads16 = try AttentionHeads(query: env.upload(inputs[0]), key: env.upload(inputs[1]), value: env.upload(inputs[2]))
            let operands = try AttentionFP8Operands(batch: batch, tokens: tokens, heads: heads, context: env.context)
            try env.context.quantizeAttentionOperands(heads16, into: operands)
            let output = try env.poisonedOutput(shape, dtype)
            try env.context.attentionFP8(operands, into: output)
            let codes = try DeviceTensor(shape: [batch, tokens, width], dtype: .u8, context: env.context, stream: env.stream)
            try env.poison(codes)
            let scales = try env.poisonedOutput([batch * tokens], .f32)
            let launch = {
                try env.context.attentionFP8(operands, codes: (codes, scales), tables: tables, splitToken: splitToken, stream: env.stream)
            }
            try launch()

            let rowsOut = try env.download(output).values
            let allScales = try operands.scales.download(stream: env.stream).floats()
            let valueScales = Array(allScales[(2 * batch * heads)...])
            let hostTables = layers.map { (inverseSmooth: $0.parameters.inverseSmooth, headFactors: AttentionFP8CodesReference.headFactors($0.parameters.inverseSmooth)) }
            let reference = AttentionFP8CodesReference.quantize(rowsOut, valueScales: valueScales, batch: batch, tokens: tokens, heads: heads,
                                                                tables: hostTables, splitToken: splitToken)
            let gpuCodes = try codes.download(stream: env.stream)
            let gpuScales = try env.download(scales).values
            let rows = batch * tokens
            let gpuValues = gpuCodes.withUnsafeBytes { bytes in (0..<(rows * width)).map { FloatFormats.float(e4m3fn: bytes[$0]) * gpuScales[$0 / width] } }
            let referenceValues = (0..<(rows * width)).map { FloatFormats.float(e4m3fn: reference.codes[$0]) * reference.scales[$0 / width] }
            var comparison = SelfTestComparison()
            try comparison.compare(SelfTestOutput(Tensor(gpuValues, shape: [rows, width])), with: referenceValues)
            let differing = gpuCodes.withUnsafeBytes { bytes in zip(bytes, reference.codes).filter { $0 != $1 }.count }
            let scaleMismatches = zip(gpuScales, reference.scales).filter { $0.bitPattern != $1.bitPattern }.count

            // The bound must hold (no value saturates), and its codes' error next to the per-token amax codes'.
            var smoothed = [Float](repeating: 0, count: rows * width)
            for index in smoothed.indices {
                let table = (index / width) % tokens < splitToken ? 0 : hostTables.count - 1
                smoothed[index] = rowsOut[index] * hostTables[table].inverseSmooth[index % width]
            }
            let saturated = smoothed.indices.filter { abs(smoothed[$0]) > 448 * reference.scales[$0 / width] }.count
            guard saturated == 0 else {
                throw AttentionFP8SelfTests.OperandMismatch(description: "\(saturated) values exceed their row's bound (448 · scale)")
            }
            let perToken = W4A4FastReference.quantize(rowsOut, rows: rows, layers[layers.count - 1].parameters)
            let perTokenValues = (0..<(rows * width)).map {
                FloatFormats.float(e4m3fn: perToken.codes[$0]) * perToken.scales[$0 / width]
            }
            let lastTableRows = (0..<rows).filter { $0 % tokens >= splitToken }
            let boundError = relativeError(lastTableRows, referenceValues, smoothed, width)
            let amaxError = relativeError(lastTableRows, perTokenValues, smoothed, width)
            let flops = 4 * Double(batch * heads) * Double(tokens) * Double(tokens) * Double(d)
            let sixteenBit = try env.time { try env.context.attentionFP8(operands, into: output) }
            return SelfTestOutcome(
                comparison: comparison, milliseconds: try env.time(launch), flops: flops,
                note: String(format: "16-bit output %.3f ms; ", sixteenBit) + "codes differing \(differing) of \(rows * width), scales \(scaleMismatches); quantization error vs the 16-bit rows: bound "
                    + SelfTestTable.scientific(boundError) + ", per-token amax " + SelfTestTable.scientific(amaxError))
        }
    }

    /// ‖a − b‖ / ‖b‖ over `rows` of width `width`.
    static func relativeError(_ rows: [Int], _ a: [Float], _ b: [Float], _ width: Int) -> Double {
        var difference = 0.0, norm = 0.0
        for row in rows {
            for index in (row * width)..<((row + 1) * width) {
                let delta = Double(a[index] - b[index])
                difference += delta * delta
                norm += Double(b[index]) * Double(b[index])
            }
        }
        return norm > 0 ? (difference / norm).squareRoot() : 0
    }
}
