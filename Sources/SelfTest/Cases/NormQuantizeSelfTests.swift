import CPUBackend
import CUDABackend
import NunchakuCore
import SVDQuant

/// `norm.quantize`: LayerNorm + adaLN modulation writing a fast W4A4 layer's e4m3 codes and scales in one kernel
/// (`CUDAContext.layerNorm(_:modulation:eps:quantizedFor:into:stream:)`), for the activation pass of a random INT4
/// layer with K = the width (its smoothing and depth), on fresh random inputs with poisoned outputs (skipped below
/// sm_90, like every fast-path case). Widths 3072 (FLUX: 128 threads, three chunks each) and 384 (64 threads, 16 of
/// them idle); SVDQuant layers have K a multiple of 128, so their depth is K and no row has padding codes.
/// - against the two kernels it replaces, on the GPU (`layerNorm` into a 16-bit tensor, then the layer's quantize
///   pass): every code byte of every row and every scale the same bit for bit, else the case fails naming the first
///   difference;
/// - against the CPU reference on sampled rows (`CPUOps.layerNorm` and `modulate` in fp32, rounded to the dtype, then
///   `W4A4FastReference.quantize`). The CPU LayerNorm sums in another order (in Double), so a value may round to the
///   neighbouring bf16/f16 and its code land one e4m3 step away; where that value is the row's amax, the scale moves
///   by at most 2⁻⁷ (one 16-bit step) and any code of the row may move one step. The case fails on a code further
///   than one step, on more than 0.1 % of the codes one step apart, or on a scale further than 2⁻⁷ (relative);
///   tolerance 4e-3 on the dequantized values, as `w4a4.fast.weights` (0.1 % of the codes off by the largest step).
/// The note counts those differences and gives the time of the two kernels, measured in the same run.
enum NormQuantizeSelfTests {
    typealias Modulation = NormalizationSelfTests.Modulation

    static let cases: [SelfTestCase] = SelfTestShapes.dtypes.flatMap { dtype in
        [
            quantize(dtype, [1, SelfTestShapes.fluxTokens, SelfTestShapes.fluxWidth], modulation: (chunks: 6, shift: 0, scale: 1, offset: 1)),
            quantize(dtype, [1, 333, 3072], modulation: nil),
            quantize(dtype, [2, 333, 3072], modulation: (chunks: 6, shift: 3, scale: 4, offset: 1)),
            quantize(dtype, [1, 1, 3072], modulation: (chunks: 2, shift: 0, scale: 1, offset: 0)),
            quantize(dtype, [2, 77, 384], modulation: (chunks: 3, shift: 2, scale: 0, offset: 1)),
            quantize(dtype, [1, 333, 384], modulation: nil),
        ]
    }

    static func quantize(_ dtype: DType, _ shape: [Int], modulation: Modulation?) -> SelfTestCase {
        let label = NormalizationSelfTests.label(shape, modulation)
        return SelfTestCase(kernel: "norm.quantize", dtype: dtype, shape: label, tolerance: 4e-3) { env in
            let context = "norm.quantize \(dtype) \(label)"
            let (batch, tokens, width) = (shape[0], shape[1], shape[2])
            let m = batch * tokens
            let layer = try W4A4FastSelfTests.layer(.int4(width, 128), dtype, env).gpu
            let pass = layer.inputPass, depth = pass.depth
            let x = env.randomTensor(shape, dtype, in: -2...2)
            let table = env.randomTensor([batch, (modulation?.chunks ?? 1) * width], dtype)
            let gpuX = try env.upload(x)
            let gpuModulation = NormalizationSelfTests.adaLN(try env.upload(table), modulation)

            let fused = (codes: try env.poisonedOutput([batch, tokens, depth], .u8), scales: try env.poisonedOutput([m], .f32))
            let launch = { try env.context.layerNorm(gpuX, modulation: gpuModulation, quantizedFor: pass, into: fused, stream: env.stream) }
            try launch()
            let normalized = try env.poisonedOutput(shape, dtype)
            let separate = (codes: try env.poisonedOutput([m, depth], .u8), scales: try env.poisonedOutput([m], .f32))
            let twoKernels = {
                try env.context.layerNorm(gpuX, modulation: gpuModulation, into: normalized, stream: env.stream)
                try layer.quantize(normalized, into: separate, stream: env.stream)
            }
            try twoKernels()

            // Bit for bit the two kernels' codes and scales, every row.
            let codeBytes = try fused.codes.download(stream: env.stream).withUnsafeBytes { Array($0) }
            let codes = try Tensor(shape: [m, depth], dtype: .u8, bytes: codeBytes)
            let scales = try env.download(fused.scales)
            let expected = (codes: try separate.codes.download(stream: env.stream).withUnsafeBytes { Array($0) },
                            scales: try env.download(separate.scales).values)
            try W4A4FastSharedInputSelfTests.checkCodes(codes, scales.values, rows: Array(0..<m), expected, depth: depth,
                                                        context: "\(context): fused against LayerNorm + quantize")

            // The CPU reference on sampled rows.
            let rows = SelfTestRows.sample(from: m, maximum: W4A4FastSelfTests.comparedRows, random: &env.random)
            let reference = try Self.reference(x, table: table, modulation: modulation, rows: rows, layer.parameters)
            let gpuRows = try W4A4SelfTestData.rows(codes, rows).withUnsafeBytes { Array($0) }
            let gpuScales = rows.map { scales.values[$0] }
            let oneStep = try W4A4FastSelfTests.checkCodesWithinOneStep(gpuRows, reference.codes, context)
            let movedScales = try checkScales(gpuScales, reference.scales, context)
            var comparison = SelfTestComparison()
            comparison.count(try SelfTestOutput(W4A4FastSelfTests.decoded(codes)))
            comparison.count(scales)
            try comparison.compare(SelfTestOutput(Tensor(dequantized(gpuRows, gpuScales, depth: depth), shape: [rows.count, depth])),
                                   with: dequantized(reference.codes, reference.scales, depth: depth))

            let milliseconds = try env.time(launch)
            let separateMilliseconds = try env.time(twoKernels)
            let bytes = SelfTestShapes.bytes(m * width, dtype) + Double(m * (depth + 4))
            return SelfTestOutcome(
                comparison: comparison, milliseconds: milliseconds, bytes: bytes,
                note: String(format: "identical to LayerNorm + quantize (%.4f ms); ", separateMilliseconds)
                    + "vs CPU: \(oneStep) of \(reference.codes.count) codes one step, \(movedScales) of \(rows.count) scales moved"
                    + (W4A4SelfTests.rowsNote(rows.count, m).map { "; \($0)" } ?? ""))
        }
    }

    /// The CPU reference of rows `rows` (of the B·S rows) of x `[B, S, D]`: `CPUOps.layerNorm`, then `CPUOps.modulate`
    /// with each row's sample's chunks of `table` (when `modulation` is given), rounded to the activation dtype of
    /// `p` as the LayerNorm's 16-bit output is, then `W4A4FastReference.quantize`: codes [rows, depth] and scales.
    static func reference(_ x: RandomTensor, table: RandomTensor, modulation: Modulation?, rows: [Int], _ p: W4A4FastParameters) throws
        -> (codes: [UInt8], scales: [Float]) {
        let (tokens, width) = (x.shape[1], x.shape[2])
        let xRows = Tensor(rows.flatMap { x.values[($0 * width)..<(($0 + 1) * width)] }, shape: [rows.count, 1, width])
        var normalized = try CPUOps.layerNorm(xRows)
        if let modulation {
            let samples = rows.map { $0 / tokens }
            normalized = try CPUOps.modulate(
                normalized, shift: NormalizationSelfTests.chunk(table, modulation.shift, width, samples: samples),
                scale: NormalizationSelfTests.chunk(table, modulation.scale, width, samples: samples), scaleOffset: modulation.offset)
        }
        return W4A4FastReference.quantize(normalized.floats().map { p.type.round($0) }, rows: rows.count, p)
    }

    /// How many `gpu` scales differ from the reference's.
    /// - Throws: naming the first scale more than 2⁻⁷ of the reference's away (or NaN: never written).
    static func checkScales(_ gpu: [Float], _ reference: [Float], _ context: String) throws -> Int {
        var moved = 0
        for (row, (scale, expected)) in zip(gpu, reference).enumerated() where scale != expected {
            guard abs(scale - expected) <= expected / 128 else {
                throw NunchakuError.invalidArgument(context: context, reason: "compared row \(row): scale \(scale), reference \(expected) (more than 2⁻⁷ apart)")
            }
            moved += 1
        }
        return moved
    }

    /// code · scale of rows of `depth` codes.
    static func dequantized(_ codes: [UInt8], _ scales: [Float], depth: Int) -> [Float] {
        codes.indices.map { FloatFormats.float(e4m3fn: codes[$0]) * scales[$0 / depth] }
    }
}
