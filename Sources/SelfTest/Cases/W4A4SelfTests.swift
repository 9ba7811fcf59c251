import CUDABackend
import NunchakuCore
import SVDQuant

/// The SVDQuant W4A4 kernels against the CPU reference `SVDQW4A4Linear` (random bf16 weights, fresh inputs):
/// - `w4a4.quantize`: the activation pass (w4a4_quantize.cu) against `quantize`; compared as dequantized activations
///   (code × scale) plus the low-rank sums. Codes and scales are expected bit-exact (same rounding points, IEEE
///   division and reciprocal on both sides); the low-rank sums differ only in fp32 summation order (~1e-7). The
///   tolerance 1e-4 fails on a single differing code among the compared rows. Every code byte, scale and low-rank
///   value of the padded buffers must be written (checked by running twice over different poison bytes).
/// - `w4a4.gemm.<path>`: the GEMM (w4a4_gemm.cu) on the CPU's quantized activations against `multiply`. INT4's
///   half-precision running sum and the epilogue are the same operations in the same order; what remains is the
///   fp32 summation order of the low-rank up-projection (and, for NVFP4, of the group sums), which moves an
///   output across a rounding boundary rarely. Tolerance 1e-3 (bf16) / 5e-4 (f16): well below the ~1e-2 that an
///   fp32 instead of half running sum would give.
/// - `w4a4.linear.<path>`: both steps on the GPU against `forward`; same tolerance.
/// Paths: `s8` (INT4 on int8 tensor cores, the sm_90 path), `s4` (native 4-bit mma, the sm_80–89 path; emulated on
/// Hopper), `fp4` (NVFP4 decoded to int8). Large M compare 64 rows (first and last included); the GPU computes all.
enum W4A4SelfTests {
    static let comparedRows = 64
    static let fluxRows = [1, 77, 333, 4096, 4608]
    /// FLUX's W4A4 layers (K, N): attention out, fused QKV, MLP up, MLP down (GELU-fed, unsigned), 3072 → 15360.
    static let fluxLayers: [W4A4SelfTestLayer] = [
        .int4(3072, 3072), .int4(3072, 9216), .int4(3072, 12288), .int4(12288, 3072, unsigned: true), .int4(3072, 15360),
    ]

    static let cases: [SelfTestCase] = linearCases + quantizeCases + gemmCases

    /// Both steps on the GPU: every FLUX layer × M in bf16 on the sm_90 path; f16, the 4-bit path and NVFP4 on fewer.
    static let linearCases: [SelfTestCase] = {
        var cases: [SelfTestCase] = []
        for layer in fluxLayers {
            for m in fluxRows { cases.append(linear(layer, .bf16, m: m, .int4Widened)) }
        }
        let f16Layers: [W4A4SelfTestLayer] = [.int4(3072, 3072), .int4(12288, 3072, unsigned: true), .int4(3072, 15360)]
        for layer in f16Layers {
            for m in [1, 333, 4608] { cases.append(linear(layer, .f16, m: m, .int4Widened)) }
        }
        cases.append(linear(.int4(3072, 9216), .bf16, m: 4608, .int4Native))
        cases.append(linear(.int4(12288, 3072, unsigned: true), .f16, m: 333, .int4Native))
        cases.append(linear(.nvfp4(3072, 9216), .bf16, m: 4608, .nvfp4Decoded))
        cases.append(linear(.nvfp4(12288, 3072), .bf16, m: 77, .nvfp4Decoded))
        cases.append(linear(.nvfp4(3072, 3072), .f16, m: 333, .nvfp4Decoded))
        return cases
    }()

    static let quantizeCases: [SelfTestCase] = {
        var cases: [SelfTestCase] = []
        let layers: [W4A4SelfTestLayer] = [.int4(3072, 3072), .int4(12288, 3072, unsigned: true), .nvfp4(3072, 3072), .nvfp4(12288, 3072)]
        for layer in layers {
            for m in [1, 333, 4608] { cases.append(quantize(layer, .bf16, m: m)) }
            cases.append(quantize(layer, .f16, m: 77))
        }
        return cases
    }()

    /// The GEMM on the CPU's quantized activations.
    static let gemmCases: [SelfTestCase] = {
        var cases: [SelfTestCase] = []
        let layers: [W4A4SelfTestLayer] = [.int4(3072, 3072), .int4(3072, 15360), .int4(12288, 3072, unsigned: true)]
        for layer in layers {
            for m in [1, 333, 4608] { cases.append(gemm(layer, .bf16, m: m, .int4Widened)) }
            cases.append(gemm(layer, .f16, m: 77, .int4Widened))
        }
        cases.append(gemm(.int4(3072, 3072), .bf16, m: 333, .int4Native))
        cases.append(gemm(.int4(12288, 3072, unsigned: true), .bf16, m: 4096, .int4Native))
        cases.append(gemm(.int4(3072, 12288), .f16, m: 77, .int4Native))
        cases.append(gemm(.nvfp4(3072, 3072), .bf16, m: 1, .nvfp4Decoded))
        cases.append(gemm(.nvfp4(3072, 12288), .bf16, m: 4096, .nvfp4Decoded))
        cases.append(gemm(.nvfp4(12288, 3072), .f16, m: 333, .nvfp4Decoded))
        return cases
    }()

    static func gemmTolerance(_ dtype: DType) -> Double { dtype == .bf16 ? 1e-3 : 5e-4 }

    /// `s4`, `s8` or `fp4`.
    static func pathName(_ path: W4A4MMAPath) -> String {
        switch path {
        case .int4Native: "s4"
        case .int4Widened: "s8"
        case .nvfp4Decoded: "fp4"
        }
    }

    /// The precision in the shape text (`int4`, `nvfp4`).
    static func shape(_ layer: W4A4SelfTestLayer, m: Int) -> String { "\(layer.precision) \(layer.label(rows: m))" }

    static func layers(_ layer: W4A4SelfTestLayer, _ dtype: DType, _ path: W4A4MMAPath, _ env: SelfTestEnvironment)
        throws -> (gpu: CUDASVDQW4A4Linear, cpu: SVDQW4A4Linear) {
        let weights = try W4A4SelfTestData.weights(layer, &env.random)
        let gpu = try CUDASVDQW4A4Linear(weights: weights, activationDType: ActivationDType(dtype), path: path,
                                         context: env.context, stream: env.stream)
        return (gpu, SVDQW4A4Linear(weights: weights))
    }

    static func linear(_ layer: W4A4SelfTestLayer, _ dtype: DType, m: Int, _ path: W4A4MMAPath) -> SelfTestCase {
        SelfTestCase(kernel: "w4a4.linear.\(pathName(path))", dtype: dtype, shape: shape(layer, m: m), tolerance: gemmTolerance(dtype)) { env in
            let (gpu, cpu) = try layers(layer, dtype, path, env)
            let x = env.randomTensor([m, layer.inFeatures], dtype, in: layer.inputRange)
            let gpuX = try env.upload(x)
            let activations = try gpu.makeQuantizedActivations(rows: m, stream: env.stream)
            let output = try env.poisonedOutput([m, layer.outFeatures], dtype)
            let launch = {
                try gpu.quantize(gpuX, into: activations, stream: env.stream)
                try gpu.multiply(activations, into: output, stream: env.stream)
            }
            try launch()
            let result = try env.download(output)
            let rows = SelfTestRows.sample(from: m, maximum: comparedRows, random: &env.random)
            let reference = try cpu.forward(W4A4SelfTestData.rows(x.tensor, rows)).floats()
            var comparison = SelfTestComparison()
            try comparison.compare(result, rows: rows, width: layer.outFeatures, with: reference)
            return SelfTestOutcome(comparison: comparison, milliseconds: try env.time(launch), flops: flops(layer, m, withQuantize: true),
                                   note: rowsNote(rows.count, m))
        }
    }

    static func gemm(_ layer: W4A4SelfTestLayer, _ dtype: DType, m: Int, _ path: W4A4MMAPath) -> SelfTestCase {
        SelfTestCase(kernel: "w4a4.gemm.\(pathName(path))", dtype: dtype, shape: shape(layer, m: m), tolerance: gemmTolerance(dtype)) { env in
            let (gpu, cpu) = try layers(layer, dtype, path, env)
            let x = env.randomTensor([m, layer.inFeatures], dtype, in: layer.inputRange)
            let quantized = try cpu.quantize(x.tensor)
            let activations = try CUDAQuantizedActivations(uploading: quantized, context: env.context, stream: env.stream)
            let output = try env.poisonedOutput([m, layer.outFeatures], dtype)
            let launch = { try gpu.multiply(activations, into: output, stream: env.stream) }
            try launch()
            let result = try env.download(output)
            let rows = SelfTestRows.sample(from: m, maximum: comparedRows, random: &env.random)
            let reference = try cpu.multiply(W4A4SelfTestData.rows(quantized, rows)).floats()
            var comparison = SelfTestComparison()
            try comparison.compare(result, rows: rows, width: layer.outFeatures, with: reference)
            return SelfTestOutcome(comparison: comparison, milliseconds: try env.time(launch), flops: flops(layer, m, withQuantize: false),
                                   note: rowsNote(rows.count, m))
        }
    }

    static func quantize(_ layer: W4A4SelfTestLayer, _ dtype: DType, m: Int) -> SelfTestCase {
        let shapeText = "\(layer.precision) M=\(m) K=\(layer.inFeatures)" + (layer.unsigned ? " unsigned" : "")
        return SelfTestCase(kernel: "w4a4.quantize", dtype: dtype, shape: shapeText, tolerance: 1e-4) { env in
            let path = W4A4MMAPath.preferred(for: layer.precision, on: env.context.device.computeCapability)
            let (gpu, cpu) = try layers(layer, dtype, path, env)
            let x = env.randomTensor([m, layer.inFeatures], dtype, in: layer.inputRange)
            let gpuX = try env.upload(x)
            let activations = try gpu.makeQuantizedActivations(rows: m, stream: env.stream)
            let launch = { try gpu.quantize(gpuX, into: activations, stream: env.stream) }
            for buffer in [activations.codes, activations.scales, activations.lowRank] { try env.poison(buffer) }
            try launch()
            let firstCodes = try activations.codes.download(stream: env.stream)
            var comparison = SelfTestComparison()
            comparison.count(try env.download(activations.lowRank))
            try checkScalesWritten(activations, &comparison, env)
            let downloaded = try activations.download(stream: env.stream)
            // Every code byte must be written: a second run over zeroed buffers must give the same bytes.
            try env.stream.fill(activations.codes.buffer, with: 0)
            try launch()
            let unwritten = try differingBytes(firstCodes, try activations.codes.download(stream: env.stream))
            guard unwritten == 0 else {
                throw NunchakuError.invalidArgument(
                    context: "w4a4.quantize", reason: "\(unwritten) of \(activations.codes.byteCount) code bytes were not written")
            }

            let rows = SelfTestRows.sample(from: m, maximum: comparedRows, random: &env.random)
            let reference = try cpu.quantize(W4A4SelfTestData.rows(x.tensor, rows))
            let gpuRows = try W4A4SelfTestData.rows(downloaded, rows)
            let k = layer.inFeatures, r = layer.rank
            try comparison.compare(
                SelfTestOutput(Tensor(W4A4SelfTestData.dequantized(gpuRows), shape: [rows.count, k])),
                with: W4A4SelfTestData.dequantized(reference))
            try comparison.compare(SelfTestOutput(gpuRows.lowRank), with: reference.lowRank.floats())
            let codes = try differingBytes(gpuRows.codes, reference.codes)
            let scales = try differingBytes(gpuRows.scales, reference.scales)
            let bytes = Double(m * k * dtype.byteCount(forElements: 1) + m * k / 2 + m * r * 4)
            return SelfTestOutcome(
                comparison: comparison, milliseconds: try env.time(launch), bytes: bytes,
                note: "code bytes differing \(codes) of \(rows.count * k / 2), scales \(scales); " + (rowsNote(rows.count, m) ?? "all rows"))
        }
    }

    /// Counts unwritten activation scales into `comparison` (INT4: 16-bit poison; NVFP4: e4m3 0xFF, a NaN no scale is).
    static func checkScalesWritten(_ activations: CUDAQuantizedActivations, _ comparison: inout SelfTestComparison,
                                   _ env: SelfTestEnvironment) throws {
        if activations.precision == .int4 {
            comparison.count(try env.download(activations.scales))
            return
        }
        let poisoned = try activations.scales.download(stream: env.stream).withUnsafeBytes { $0.filter { $0 == SelfTestPoison.byte }.count }
        guard poisoned == 0 else {
            throw NunchakuError.invalidArgument(
                context: "w4a4.quantize", reason: "\(poisoned) of \(activations.scales.byteCount) NVFP4 scales were not written")
        }
    }

    static func differingBytes(_ a: Tensor, _ b: Tensor) throws -> Int {
        guard a.byteCount == b.byteCount else {
            throw NunchakuError.invalidArgument(context: "w4a4 self-test", reason: "\(a.byteCount) bytes against \(b.byteCount)")
        }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in zip(x, y).filter { $0 != $1 }.count } }
    }

    /// 2·M·N·K for the 4-bit products plus 2·M·N·R for the low-rank up-projection (and 2·M·K·R for the
    /// down-projection when the quantize step is included).
    static func flops(_ layer: W4A4SelfTestLayer, _ m: Int, withQuantize: Bool) -> Double {
        let n = Double(layer.outFeatures), k = Double(layer.inFeatures), r = Double(layer.rank), rows = Double(m)
        return 2 * rows * n * k + 2 * rows * n * r + (withQuantize ? 2 * rows * k * r : 0)
    }

    static func rowsNote(_ compared: Int, _ m: Int) -> String? {
        compared < m ? "CPU checks \(compared) of \(m) rows" : nil
    }
}
