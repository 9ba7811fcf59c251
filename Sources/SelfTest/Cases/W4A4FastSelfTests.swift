import CPUBackend
import CUDABackend
import NunchakuCore
import SVDQuant

/// The fast (FP8, sm_90+) W4A4 path against its CPU reference `W4A4FastReference` (random bf16 INT4 and NVFP4
/// layers, the NVFP4 ones with `wtscale` and `wcscales`; fresh inputs; skipped on older GPUs):
/// - `w4a4.fast.quantize`: the activation pass. Codes and scales are the same fp32 operations on both sides: 0
///   differing bytes expected; the tolerance 1e-6 on the dequantized values fails on one differing code. Every byte
///   must be written (poisoned before; 0xFF is an e4m3 NaN).
/// - `w4a4.fast.weights`: the 4-bit → e4m3 expansion with the scales and the low-rank branch folded in
///   (`fma(v, s · f, L) / u`). The GPU sums L on the tensor cores in another order than the reference, so a code may
///   land one e4m3 step from the reference's where the two sums round apart: the case fails on any byte further
///   apart or on more than 0.1 % of the bytes one step apart (the note counts them); tolerance 4e-3 on the values
///   (0.1 % of the codes off by the largest e4m3 step, 1/8: √0.001 / 8 ≈ 4e-3).
/// - `w4a4.fast.linear`: all steps (quantize, expand, cuBLASLt FP8 GEMM with the engine's default
///   `FP8Accumulation.standard`, fast accumulation everywhere; the cases marked `mixed` promote the sums deeper than
///   4096) against `W4A4FastReference.forward`. What differs is fp32 summation order (the FP8 GEMM's partial sums; the
///   rare weight code one step apart), the fast accumulator's truncation, and the output rounding: measured 1.7e-3
///   against a float64 reference of the same codes on an H200 with promoted sums, 2.0e-3 with fast accumulation at
///   K = 3072; tolerance 6e-3 (bf16) / 3e-3 (f16) there (`tolerance`), far below the 3–4e-2 the FP8 activations
///   themselves cost. Deeper sums accumulated fast truncate more where the inputs are all positive (the unsigned
///   layers: uniform in [−0.17, 1.5], so every product adds in the same direction): 1.1e-2 at K = 12288 on an H200,
///   tolerance 2e-2; FLUX's real fc2 inputs (GELU outputs, mostly near zero) gave 3.2e-3 (docs/hopper.md). The note
///   gives the fast path's error against the exact path (GPU; for NVFP4 the e2m1-activation path) and both against
///   the dense BF16-equivalent layer (CPU, fp32).
enum W4A4FastSelfTests {
    static let comparedRows = 64
    static let cases: [SelfTestCase] = {
        var cases: [SelfTestCase] = []
        for layer in W4A4SelfTests.fluxLayers {
            for m in [1, 333, 4608] { cases.append(linear(layer, .bf16, m: m)) }
        }
        cases.append(linear(.int4(3072, 3072), .f16, m: 333))
        // The long GELU-fed sums with promotion (`FP8Accumulation.mixed`), at the 6e-3 tolerance.
        cases.append(linear(.int4(12288, 3072, unsigned: true), .bf16, m: 4608, accumulation: .mixed))
        cases.append(linear(.int4(3072, 3072, unsigned: true), .bf16, m: 4608))
        for layer in [W4A4SelfTestLayer.nvfp4(3072, 3072), .nvfp4(3072, 21504), .nvfp4(12288, 3072)] {
            cases.append(linear(layer, .bf16, m: 4608))
        }
        cases.append(linear(.nvfp4(3072, 3072), .f16, m: 333))
        // GELU in the FP8 GEMM's epilogue (FLUX's fc1 / proj_mlp shapes).
        for layer in [W4A4SelfTestLayer.int4(3072, 12288), .nvfp4(3072, 12288)] { cases.append(linear(layer, .bf16, m: 4608, gelu: true)) }
        cases.append(linear(.int4(3072, 12288), .f16, m: 333, gelu: true))
        // The output accumulated in the FP8 GEMM's epilogue (FLUX's split single-block output: mlp_fc2 onto out_proj).
        cases.append(accumulate(.int4(12288, 3072, unsigned: true), .bf16, m: 4608))
        cases.append(accumulate(.nvfp4(3072, 3072), .f16, m: 333))
        // The gated residual folded into the epilogue (FLUX's attention and MLP outputs).
        cases.append(accumulate(.int4(3072, 3072), .bf16, m: 4608, gated: true, preparedGate: true))
        cases.append(accumulate(.int4(12288, 3072, unsigned: true), .bf16, m: 4608, gated: true))
        cases.append(accumulate(.int4(12288, 3072, unsigned: true), .bf16, m: 4608, gated: true, accumulation: .mixed))
        cases.append(accumulate(.nvfp4(3072, 3072), .f16, m: 333, gated: true))
        // Each launch variant (`CUDASVDQW4A4FastLinear.quantizeLaunch`): kept3 (K = 3072, M = 1, 333), kept6 (K = 3072,
        // M = 4608), plain (K = 12288, 15360 at M = 1, 333), wide (K = 12288, 15360 at M = 4608), bf16 and f16.
        for layer in [W4A4SelfTestLayer.int4(3072, 3072), .int4(12288, 3072, unsigned: true), .int4(15360, 3072)] {
            for m in [1, 333, 4608] { cases.append(quantize(layer, .bf16, m: m)) }
        }
        cases.append(quantize(.int4(3072, 3072), .f16, m: 4608))
        cases.append(quantize(.int4(12288, 3072, unsigned: true), .f16, m: 4608))
        for layer in [W4A4SelfTestLayer.int4(3072, 3072), .int4(12288, 3072, unsigned: true), .nvfp4(3072, 3072), .nvfp4(12288, 3072)] {
            cases.append(weights(layer, .bf16))
        }
        // The largest rank (its low-rank tiles need more than 48 KiB of shared memory), f16. (Ragged N and K, which the
        // self-test layers cannot have, are checked by scripts/w4a4_expand_bench.py.)
        cases.append(weights(.int4(3072, 3072, rank: 256), .f16))
        return cases
    }()

    /// The engine with `accumulation` shared by all cases of a run; skips the case below sm_90.
    static func engine(_ env: SelfTestEnvironment, accumulation: FP8Accumulation = .standard) throws -> CUDAW4A4FastEngine {
        let capability = env.context.device.computeCapability
        guard capability >= CUDAW4A4FastEngine.minimumComputeCapability else {
            throw SelfTestSkip("the fast W4A4 path needs \(CUDAW4A4FastEngine.minimumComputeCapability), this GPU is \(capability)")
        }
        return try env.shared("w4a4.fast.engine.\(accumulation.rawValue)") {
            try CUDAW4A4FastEngine(context: env.context, accumulation: accumulation)
        }
    }

    /// The tolerance of a whole-layer case against `W4A4FastReference.forward` (see the file comment): 2e-2 where
    /// the layer's depth is summed with fast accumulation beyond `FP8Accumulation.fastDepthLimit`, else 6e-3 (bf16)
    /// or 3e-3 (f16).
    static func tolerance(_ layer: W4A4SelfTestLayer, _ dtype: DType, _ accumulation: FP8Accumulation) -> Double {
        if layer.inFeatures > FP8Accumulation.fastDepthLimit, accumulation.isFast(depth: layer.inFeatures) { return 2e-2 }
        return dtype == .bf16 ? 6e-3 : 3e-3
    }

    /// The case's shape text, with the accumulation when it is not the standard one.
    static func shape(_ layer: W4A4SelfTestLayer, m: Int, _ accumulation: FP8Accumulation) -> String {
        W4A4SelfTests.shape(layer, m: m) + (accumulation == .standard ? "" : " \(accumulation.rawValue)")
    }

    static func layer(_ layer: W4A4SelfTestLayer, _ dtype: DType, _ env: SelfTestEnvironment, accumulation: FP8Accumulation = .standard)
        throws -> (gpu: CUDASVDQW4A4FastLinear, weights: SVDQW4A4Weights) {
        let engine = try engine(env, accumulation: accumulation)
        let weights = try W4A4SelfTestData.weights(layer, &env.random)
        return (try CUDASVDQW4A4FastLinear(weights: weights, activationDType: ActivationDType(dtype), engine: engine, stream: env.stream), weights)
    }

    /// The whole fast layer against `W4A4FastReference.forward` (then `CPUOps.geluTanh` when `gelu`: the GPU applies
    /// GELU in the GEMM's epilogue before rounding, the reference after).
    static func linear(_ layer: W4A4SelfTestLayer, _ dtype: DType, m: Int, gelu: Bool = false,
                       accumulation: FP8Accumulation = .standard) -> SelfTestCase {
        SelfTestCase(kernel: gelu ? "w4a4.fast.linear_gelu" : "w4a4.fast.linear", dtype: dtype,
                     shape: shape(layer, m: m, accumulation), tolerance: tolerance(layer, dtype, accumulation)) { env in
            let (gpu, weights) = try self.layer(layer, dtype, env, accumulation: accumulation)
            let x = env.randomTensor([m, layer.inFeatures], dtype, in: layer.inputRange)
            let gpuX = try env.upload(x)
            let output = try env.poisonedOutput([m, layer.outFeatures], dtype)
            let launch = { try gpu.forward(gpuX, gelu: gelu, into: output, stream: env.stream) }
            try launch()
            let result = try env.download(output)
            let rows = SelfTestRows.sample(from: m, maximum: comparedRows, random: &env.random)
            let xRows = try W4A4SelfTestData.rows(x.tensor, rows)
            var reference = W4A4FastReference.forward(xRows.floats(), rows: rows.count, qweight: weights.canonical.qweight, gpu.parameters)
            if gelu { reference = try CPUOps.geluTanh(Tensor(reference, shape: [rows.count, layer.outFeatures])).floats() }
            var comparison = SelfTestComparison()
            try comparison.compare(result, rows: rows, width: layer.outFeatures, with: reference)
            let milliseconds = try env.time(launch)
            let note = try (gelu ? "GELU in the epilogue" : errorNote(result, rows: rows, x: gpuX, xRows: xRows, weights: weights, dtype, env))
                + (W4A4SelfTests.rowsNote(rows.count, m).map { "; \($0)" } ?? "")
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   flops: W4A4SelfTests.flops(layer, m, withQuantize: true), note: note)
        }
    }

    /// `forward(x, accumulatingInto: y)` on random `y` against `round(y + W4A4FastReference.forward(x))` (the GPU
    /// rounds the sum once, the reference twice: within a bf16 step, far inside the tolerance; an epilogue that
    /// ignored `y` would be off by about |y| / |y + layer(x)|). `gated`: `forward(x, gate:, accumulatingInto: y)`
    /// against `round(y + g ⊙ forward(x))` with a random gate in [−1.5, 1.5] (one gate left at zero; the second
    /// chunk of a `[1, 2N]` table, so the chunk offset is exercised); the GPU also rounds the gated bias.
    /// `preparedGate`: the gate's channel vectors made ahead by `prepareGates` as the second of two jobs (the first
    /// for the table's other chunk, which the forward must not take).
    static func accumulate(_ layer: W4A4SelfTestLayer, _ dtype: DType, m: Int, gated: Bool = false, preparedGate: Bool = false,
                           accumulation: FP8Accumulation = .standard) -> SelfTestCase {
        SelfTestCase(kernel: gated ? "w4a4.fast.linear_gated" : "w4a4.fast.linear_accumulate", dtype: dtype,
                     shape: shape(layer, m: m, accumulation), tolerance: tolerance(layer, dtype, accumulation)) { env in
            let (gpu, weights) = try self.layer(layer, dtype, env, accumulation: accumulation)
            let n = layer.outFeatures
            let x = env.randomTensor([m, layer.inFeatures], dtype, in: layer.inputRange)
            let y = env.randomTensor([m, n], dtype)
            var gateTable = env.randomTensor([1, 2 * n], dtype, in: -1.5...1.5).tensor.floats()
            gateTable[n + n / 2] = 0
            let gate = gated
                ? try DeviceTensor(uploading: Tensor(gateTable, shape: [1, 2 * n]).converted(to: dtype), context: env.context, stream: env.stream)
                : nil
            var gateChunk = gate.map { ModulationChunk($0, chunk: 1) }
            if preparedGate, let table = gate, let chunk = gateChunk {
                gateChunk?.prepared = try CUDASVDQW4A4FastLinear.prepareGates([(gpu, ModulationChunk(table, chunk: 0)), (gpu, chunk)],
                                                                              stream: env.stream)
            }
            let gpuX = try env.upload(x)
            let output = try env.upload(y)
            let launch = {
                if let gateChunk {
                    try gpu.forward(gpuX, gate: gateChunk, accumulatingInto: output, stream: env.stream)
                } else {
                    try gpu.forward(gpuX, accumulatingInto: output, stream: env.stream)
                }
            }
            try launch()
            let result = try env.download(output)
            let rows = SelfTestRows.sample(from: m, maximum: comparedRows, random: &env.random)
            let xRows = try W4A4SelfTestData.rows(x.tensor, rows)
            let yRows = try W4A4SelfTestData.rows(y.tensor, rows).floats()
            let layerOutput = W4A4FastReference.forward(xRows.floats(), rows: rows.count, qweight: weights.canonical.qweight, gpu.parameters)
            let gateValues = gated ? Tensor(Array(gateTable[n...]), shape: [n]).converted(to: dtype).floats() : [Float](repeating: 1, count: n)
            let reference = layerOutput.indices.map { gpu.parameters.type.round(yRows[$0] + gateValues[$0 % n] * layerOutput[$0]) }
            var comparison = SelfTestComparison()
            try comparison.compare(result, rows: rows, width: n, with: reference)
            let milliseconds = try env.time(launch)
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   note: (preparedGate ? "gate vectors made ahead, job 2 of 2; " : "") + (W4A4SelfTests.rowsNote(rows.count, m) ?? "all rows"))
        }
    }

    /// `vs exact e1, vs dense e2 (exact e3)`: the fast output against the exact GPU path and both against the
    /// dense equivalent, over the compared rows.
    static func errorNote(_ fast: SelfTestOutput, rows: [Int], x: DeviceTensor, xRows: Tensor, weights: SVDQW4A4Weights,
                          _ dtype: DType, _ env: SelfTestEnvironment) throws -> String {
        let width = weights.outFeatures
        let exactLayer = try CUDASVDQW4A4Linear(weights: weights, activationDType: ActivationDType(dtype), context: env.context, stream: env.stream)
        let exact = try env.download(try exactLayer.forward(x, stream: env.stream))
        let exactRows = rows.flatMap { exact.values[($0 * width)..<(($0 + 1) * width)] }
        let dense = try weights.denseForward(xRows)
        func error(_ output: SelfTestOutput, against reference: [Float]) throws -> Double {
            var comparison = SelfTestComparison()
            try comparison.compare(output, rows: rows, width: width, with: reference)
            return comparison.relativeError
        }
        let fastVsExact = try error(fast, against: exactRows)
        let fastVsDense = try error(fast, against: dense)
        let exactVsDense = try error(exact, against: dense)
        return String(format: "vs exact %.1e, vs dense %.1e (exact %.1e)", fastVsExact, fastVsDense, exactVsDense)
    }

    static func quantize(_ layer: W4A4SelfTestLayer, _ dtype: DType, m: Int) -> SelfTestCase {
        let shapeText = "int4 M=\(m) K=\(layer.inFeatures)" + (layer.unsigned ? " unsigned" : "")
        return SelfTestCase(kernel: "w4a4.fast.quantize", dtype: dtype, shape: shapeText, tolerance: 1e-6) { env in
            let (gpu, _) = try self.layer(layer, dtype, env)
            let x = env.randomTensor([m, layer.inFeatures], dtype, in: layer.inputRange)
            let gpuX = try env.upload(x)
            let codes = try DeviceTensor(shape: [m, gpu.parameters.gemmDepth], dtype: .u8, context: env.context, stream: env.stream)
            let scales = try env.poisonedOutput([m], .f32)
            try env.poison(codes)
            let launch = { try gpu.quantize(gpuX, into: (codes, scales), stream: env.stream) }
            try launch()
            var comparison = SelfTestComparison()
            let gpuScales = try env.download(scales)
            let gpuCodes = try codes.download(stream: env.stream)
            comparison.count(try SelfTestOutput(decoded(gpuCodes)))
            let rows = SelfTestRows.sample(from: m, maximum: comparedRows, random: &env.random)
            let xRows = try W4A4SelfTestData.rows(x.tensor, rows).floats()
            let reference = W4A4FastReference.quantize(xRows, rows: rows.count, gpu.parameters)
            let gpuRows = try W4A4SelfTestData.rows(gpuCodes, rows)
            let depth = gpu.parameters.gemmDepth
            let referenceValues = (0..<(rows.count * depth)).map { FloatFormats.float(e4m3fn: reference.codes[$0]) * reference.scales[$0 / depth] }
            let gpuValues = gpuRows.withUnsafeBytes { bytes in
                (0..<(rows.count * depth)).map { FloatFormats.float(e4m3fn: bytes[$0]) * gpuScales.values[rows[$0 / depth]] }
            }
            try comparison.compare(SelfTestOutput(Tensor(gpuValues, shape: [rows.count, depth])), with: referenceValues)
            let differing = try W4A4SelfTests.differingBytes(gpuRows, try Tensor(shape: [rows.count, depth], dtype: .u8, bytes: reference.codes))
            let scaleMismatches = zip(rows, reference.scales).filter { gpuScales.values[$0.0] != $0.1 }.count
            let bytes = Double(m * layer.inFeatures * dtype.byteCount(forElements: 1) + m * depth + m * 4)
            return SelfTestOutcome(comparison: comparison, milliseconds: try env.time(launch), bytes: bytes,
                                   note: "code bytes differing \(differing) of \(rows.count * depth), scales \(scaleMismatches); "
                                       + (W4A4SelfTests.rowsNote(rows.count, m) ?? "all rows"))
        }
    }

    /// The folded weights against the CPU reference, from every expansion kernel the GPU has for the layer: on Hopper
    /// at rank 32 the wgmma kernel, launched plainly and then early (`launchesExpansionsEarly`, timed) right after the
    /// mma.sync one into another scratch, whose bytes must be the plain launch's; else the mma.sync one.
    static func weights(_ layer: W4A4SelfTestLayer, _ dtype: DType) -> SelfTestCase {
        let shapeText = "\(layer.precision) N=\(layer.outFeatures) K=\(layer.inFeatures) R=\(layer.rank)"
        return SelfTestCase(kernel: "w4a4.fast.weights", dtype: dtype, shape: shapeText, tolerance: 4e-3) { env in
            let (gpu, weights) = try self.layer(layer, dtype, env)
            let engine = gpu.engine
            let shape = [layer.outFeatures, gpu.parameters.gemmDepth]
            let folded = try DeviceTensor(shape: shape, dtype: .u8, context: env.context, stream: env.stream)
            let predecessorOutput = try DeviceTensor(shape: shape, dtype: .u8, context: env.context, stream: env.stream)
            let launch = { try gpu.foldedWeights(into: folded, stream: env.stream) }
            let reference = W4A4FastReference.foldedWeights(weights.canonical.qweight, gpu.parameters)
            let (wgmma, early) = (engine.expandsWithWGMMA, engine.launchesExpansionsEarly)
            defer { (engine.expandsWithWGMMA, engine.launchesExpansionsEarly) = (wgmma, early) }
            var comparison = SelfTestComparison()   // every kernel's output: the error is the worst one's
            var notes: [String] = []
            var plainBytes: [UInt8]?
            let ways = wgmma && layer.rank == 32 ? ["mma.sync", "wgmma", "wgmma launched early"] : ["mma.sync"]
            for way in ways {   // the early wgmma launch last: the one timed
                try env.poison(folded)
                if way == "wgmma launched early" {
                    engine.expandsWithWGMMA = false
                    try gpu.foldedWeights(into: predecessorOutput, stream: env.stream)
                }
                (engine.expandsWithWGMMA, engine.launchesExpansionsEarly) = (way != "mma.sync", way == "wgmma launched early")
                try launch()
                let result = try folded.download(stream: env.stream)
                try comparison.compare(try SelfTestOutput(decoded(result)), with: reference.map { FloatFormats.float(e4m3fn: $0) })
                let bytes = result.withUnsafeBytes { Array($0) }
                let oneStep = try checkCodesWithinOneStep(bytes, reference, "w4a4.fast.weights \(shapeText) \(way)")
                if way == "wgmma" { plainBytes = bytes }
                if way == "wgmma launched early", let plainBytes, let index = bytes.indices.first(where: { bytes[$0] != plainBytes[$0] }) {
                    throw NunchakuError.invalidArgument(
                        context: "w4a4.fast.weights \(shapeText)",
                        reason: "byte \(index) launched early \(bytes[index]), launched plainly \(plainBytes[index]) (must be identical)")
                }
                notes.append("\(way): bytes one e4m3 step from the reference \(oneStep) of \(result.byteCount)")
            }
            let bytes = Double(layer.outFeatures * layer.inFeatures / 2 + layer.outFeatures * layer.inFeatures / layer.precision.groupSize
                                   + 2 * (layer.outFeatures + layer.inFeatures) * layer.rank + folded.byteCount)
            return SelfTestOutcome(comparison: comparison, milliseconds: try env.time(launch), bytes: bytes, note: notes.joined(separator: "; "))
        }
    }

    /// GPU e4m3 codes against the reference's that may differ where two fp32 orders round apart (the folded
    /// weights, a LayerNorm's codes): the number one e4m3 step apart (codes ordered as signed magnitudes, so +0 and
    /// −0 are the same and ±(smallest) their neighbours).
    /// - Throws: naming the first code further apart (or a NaN code: an unwritten byte), or when more than 0.1 % of the
    ///   codes are one step apart.
    static func checkCodesWithinOneStep(_ gpu: [UInt8], _ reference: [UInt8], _ context: String) throws -> Int {
        func signedMagnitude(_ code: UInt8) -> Int? {
            let magnitude = Int(code & 0x7F)
            guard magnitude != 0x7F else { return nil }
            return code & 0x80 != 0 ? -magnitude : magnitude
        }
        var oneStep = 0
        for (index, (a, b)) in zip(gpu, reference).enumerated() where a != b {
            guard let x = signedMagnitude(a), let y = signedMagnitude(b), abs(x - y) <= 1 else {
                throw NunchakuError.invalidArgument(
                    context: context, reason: "byte \(index): code \(a), reference \(b) (more than one e4m3 step apart)")
            }
            if x != y { oneStep += 1 }
        }
        guard oneStep * 1000 <= reference.count else {
            throw NunchakuError.invalidArgument(context: context, reason: "\(oneStep) of \(reference.count) codes one e4m3 step apart (at most 0.1 %)")
        }
        return oneStep
    }

    /// e4m3 bytes as an f32 tensor of their values (the poison byte 0xFF decodes to NaN and is counted as such).
    static func decoded(_ codes: Tensor) -> Tensor {
        let values = codes.withUnsafeBytes { $0.map { FloatFormats.float(e4m3fn: $0) } }
        return Tensor(values, shape: codes.shape)
    }
}
