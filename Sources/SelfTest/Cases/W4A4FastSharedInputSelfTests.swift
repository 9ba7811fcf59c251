import CPUBackend
import CUDABackend
import NunchakuCore
import SVDQuant

/// `w4a4.fast.shared_input`: FLUX's single-block `mlp_fc1` (N = 12288, GELU in the epilogue) and `qkv_proj`
/// (N = 9216) with one smoothing vector, made to share one activation pass (`CUDAW4A4FastSharedInput`), against
/// the CPU reference (`W4A4FastReference.quantize`; fresh random inputs, poisoned outputs):
/// - the shared codes and scales: every byte and scale the reference's, else the case fails naming the first
///   difference;
/// - both outputs of `forward` within the `w4a4.fast.linear` tolerances (6e-3 bf16, 3e-3 f16) of the reference
///   (`W4A4FastReference.sharedForward`);
/// - each layer alone (`forward`, as while a LoRA is on it: its own quantize pass, the same codes) against the same
///   reference, same tolerance.
/// The note gives the time of the shared forward against the two layers alone, measured in the same run.
enum W4A4FastSharedInputSelfTests {
    static let cases: [SelfTestCase] = [
        shared(.int4, .bf16, m: 4608), shared(.int4, .bf16, m: 333), shared(.int4, .f16, m: 333),
        shared(.nvfp4, .bf16, m: 4608), shared(.nvfp4, .f16, m: 77),
    ]

    static func shared(_ precision: SVDQuantPrecision, _ dtype: DType, m: Int) -> SelfTestCase {
        let shapes = [W4A4SelfTestLayer(precision: precision, inFeatures: 3072, outFeatures: 12288, unsigned: false),
                      W4A4SelfTestLayer(precision: precision, inFeatures: 3072, outFeatures: 9216, unsigned: false)]
        let k = 3072
        return SelfTestCase(kernel: "w4a4.fast.shared_input", dtype: dtype, shape: "\(precision) M=\(m) N=12288+9216 K=\(k)",
                            tolerance: dtype == .bf16 ? 6e-3 : 3e-3) { env in
            let engine = try W4A4FastSelfTests.engine(env)
            let mlp = try W4A4SelfTestData.weights(shapes[0], &env.random)
            var qkvTensors = try W4A4SelfTestData.weights(shapes[1], &env.random).canonical
            qkvTensors.smooth = mlp.canonical.smooth
            let qkv = try SVDQW4A4Weights(name: "selftest", tensors: qkvTensors, layout: .canonical(vectorOrder: .natural))
            let weights = [mlp, qkv]
            guard let type = ActivationDType(dtype), CUDAW4A4FastSharedInput.canShare(weights, type: type) else {
                throw NunchakuError.invalidArgument(context: "w4a4.fast.shared_input", reason: "\(dtype) layers with one smoothing vector were not allowed to share")
            }
            let layers = try weights.map { try CUDASVDQW4A4FastLinear(weights: $0, activationDType: type, engine: engine, stream: env.stream) }
            let pass = try CUDAW4A4FastSharedInput(layers)
            let p = layers.map(\.parameters)
            let x = env.randomTensor([m, k], dtype)
            let gpuX = try env.upload(x)
            let rows = SelfTestRows.sample(from: m, maximum: W4A4FastSelfTests.comparedRows, random: &env.random)
            let xRows = try W4A4SelfTestData.rows(x.tensor, rows).floats()

            // The shared codes and scales.
            let codes = try DeviceTensor(shape: [m, pass.gemmDepth], dtype: .u8, context: env.context, stream: env.stream)
            let scales = try env.poisonedOutput([m], .f32)
            try env.poison(codes)
            try pass.quantize(gpuX, into: (codes, scales), stream: env.stream)
            let expected = W4A4FastReference.quantize(xRows, rows: rows.count, p[0])
            try checkCodes(try codes.download(stream: env.stream), try env.download(scales).values, rows: rows, expected, depth: pass.gemmDepth,
                           context: "w4a4.fast.shared_input")

            // The outputs' reference (one quantize, each layer's folded weights; GELU on mlp_fc1's).
            var references = W4A4FastReference.sharedForward(xRows, rows: rows.count, layers: zip(weights, p).map { ($0.canonical.qweight, $1) })
            references[0] = try CPUOps.geluTanh(Tensor(references[0], shape: [rows.count, shapes[0].outFeatures])).floats()

            // Both outputs of the shared forward, then each layer alone.
            let outputs = try layers.map { try env.poisonedOutput([m, $0.outFeatures], dtype) }
            let launch = { try pass.forward(gpuX, gelu: [true, false], into: outputs, stream: env.stream) }
            try launch()
            var comparison = SelfTestComparison()
            for (layer, output) in outputs.enumerated() {
                try comparison.compare(try env.download(output), rows: rows, width: shapes[layer].outFeatures, with: references[layer])
            }
            let milliseconds = try env.time(launch)
            let separateOutputs = try layers.map { try env.poisonedOutput([m, $0.outFeatures], dtype) }
            let separate = {
                for (layer, (output, gelu)) in zip(layers, zip(separateOutputs, [true, false])) {
                    try layer.forward(gpuX, gelu: gelu, into: output, stream: env.stream)
                }
            }
            try separate()
            for (layer, output) in separateOutputs.enumerated() {
                try comparison.compare(try env.download(output), rows: rows, width: shapes[layer].outFeatures, with: references[layer])
            }
            let separateMilliseconds = try env.time(separate)
            let flops = shapes.reduce(0) { $0 + W4A4SelfTests.flops($1, m, withQuantize: true) }
            return SelfTestOutcome(
                comparison: comparison, milliseconds: milliseconds, flops: flops,
                note: String(format: "codes and scales identical; layers alone %.3f ms", separateMilliseconds) + (W4A4SelfTests.rowsNote(rows.count, m).map { "; \($0)" } ?? ""))
        }
    }

    /// Throws naming `context` and the first code byte or scale of the compared rows (of codes [M, depth]) that
    /// differs from `expected`, which holds those rows in that order.
    static func checkCodes(_ codes: Tensor, _ scales: [Float], rows: [Int], _ expected: (codes: [UInt8], scales: [Float]), depth: Int,
                           context: String) throws {
        let gpuRows = try W4A4SelfTestData.rows(codes, rows).withUnsafeBytes { Array($0) }
        for (index, row) in rows.enumerated() {
            guard scales[row] == expected.scales[index] else {
                throw NunchakuError.invalidArgument(context: context, reason: "row \(row): scale \(scales[row]), reference \(expected.scales[index])")
            }
            for column in 0..<depth where gpuRows[index * depth + column] != expected.codes[index * depth + column] {
                throw NunchakuError.invalidArgument(
                    context: context,
                    reason: "row \(row) column \(column): code \(gpuRows[index * depth + column]), reference \(expected.codes[index * depth + column])")
            }
        }
    }
}
