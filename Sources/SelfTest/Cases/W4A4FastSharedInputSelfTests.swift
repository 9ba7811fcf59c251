import CPUBackend
import CUDABackend
import NunchakuCore
import SVDQuant

/// `w4a4.fast.shared_input`: FLUX's single-block `mlp_fc1` (N = 12288, GELU in the epilogue) and `qkv_proj`
/// (N = 9216) with one smoothing vector, made to share one activation pass (`CUDAW4A4FastSharedInput`), against
/// the CPU reference (`W4A4FastReference.sharedQuantize`; fresh random inputs, poisoned outputs):
/// - the shared codes and scales from the GPU's own low-rank values: every byte and scale the reference's (one
///   amax over t and both layers' l), else the case fails naming the first difference;
/// - both outputs of `forward` within the `w4a4.fast.linear` tolerances (6e-3 bf16, 3e-3 f16) of the reference;
/// - each layer alone (`forward`, as while a LoRA is on it: its quantize writes zeros in the other layer's
///   low-rank columns) against `W4A4FastReference.forward`, same tolerance.
/// The note counts the rows whose shared scale differs from what the qkv layer alone would use and gives the time
/// of the shared forward against the two layers alone, measured in the same run.
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
            guard let type = ActivationDType(dtype), let columns = CUDAW4A4FastSharedInput.lowRankColumns(sharing: weights, type: type) else {
                throw NunchakuError.invalidArgument(context: "w4a4.fast.shared_input", reason: "\(dtype) layers with one smoothing vector were not allowed to share")
            }
            let layers = try zip(weights, columns).map {
                try CUDASVDQW4A4FastLinear(weights: $0, activationDType: type, lowRankColumns: $1, engine: engine, stream: env.stream)
            }
            let pass = try CUDAW4A4FastSharedInput(layers, stream: env.stream)
            let p = layers.map(\.parameters)
            let x = env.randomTensor([m, k], dtype)
            let gpuX = try env.upload(x)
            let rows = SelfTestRows.sample(from: m, maximum: W4A4FastSelfTests.comparedRows, random: &env.random)
            let xRows = try W4A4SelfTestData.rows(x.tensor, rows).floats()

            // The shared codes and scales, from the GPU's own low-rank values.
            let lowRank = try DeviceTensor(shape: [m, pass.rank], dtype: dtype, context: env.context, stream: env.stream)
            try pass.lowRank(gpuX, into: lowRank, stream: env.stream)
            let codes = try DeviceTensor(shape: [m, pass.gemmDepth], dtype: .u8, context: env.context, stream: env.stream)
            let scales = try env.poisonedOutput([m], .f32)
            try env.poison(codes)
            try pass.quantize(gpuX, lowRank: lowRank, into: (codes, scales), stream: env.stream)
            let lowRankRows = try W4A4SelfTestData.rows(try lowRank.download(stream: env.stream), rows).floats()
            let gpuLowRanks = [(0, p[0].rank), (p[0].rank, p[1].rank)].map { offset, rank in
                (0..<rows.count).flatMap { row in lowRankRows[(row * pass.rank + offset)..<(row * pass.rank + offset + rank)] }
            }
            let expected = W4A4FastReference.sharedQuantize(xRows, lowRanks: gpuLowRanks, rows: rows.count, p)
            try checkCodes(try codes.download(stream: env.stream), try env.download(scales).values, rows: rows, expected, depth: pass.gemmDepth)
            let qkvAlone = W4A4FastReference.quantize(xRows, lowRank: gpuLowRanks[1], rows: rows.count, p[1])
            let rescaled = zip(qkvAlone.scales, expected.scales).filter { $0 != $1 }.count

            // The references of the outputs: CPU low-rank values, shared and alone, on each layer's folded weights.
            let folded = zip(weights, p).map { W4A4FastReference.foldedWeights($0.canonical.qweight, $1) }
            let cpuLowRanks = p.map { W4A4FastReference.lowRank(xRows, rows: rows.count, $0) }
            let sharedCodes = W4A4FastReference.sharedQuantize(xRows, lowRanks: cpuLowRanks, rows: rows.count, p)
            func reference(_ layer: Int, shared: Bool) throws -> [Float] {
                let activations = shared ? sharedCodes : W4A4FastReference.quantize(xRows, lowRank: cpuLowRanks[layer], rows: rows.count, p[layer])
                let y = W4A4FastReference.multiply(codes: activations.codes, scales: activations.scales, weights: folded[layer], rows: rows.count, p[layer])
                return layer == 0 ? try CPUOps.geluTanh(Tensor(y, shape: [rows.count, shapes[0].outFeatures])).floats() : y
            }

            // Both outputs of the shared forward, then each layer alone.
            let outputs = try layers.map { try env.poisonedOutput([m, $0.outFeatures], dtype) }
            let launch = { try pass.forward(gpuX, gelu: [true, false], into: outputs, stream: env.stream) }
            try launch()
            var comparison = SelfTestComparison()
            for (layer, output) in outputs.enumerated() {
                try comparison.compare(try env.download(output), rows: rows, width: shapes[layer].outFeatures, with: try reference(layer, shared: true))
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
                try comparison.compare(try env.download(output), rows: rows, width: shapes[layer].outFeatures, with: try reference(layer, shared: false))
            }
            let separateMilliseconds = try env.time(separate)
            let flops = shapes.reduce(0) { $0 + W4A4SelfTests.flops($1, m, withQuantize: true) }
            return SelfTestOutcome(
                comparison: comparison, milliseconds: milliseconds, flops: flops,
                note: String(format: "codes and scales identical; rows rescaled by mlp_fc1's low-rank %d of %d; layers alone %.3f ms",
                             rescaled, rows.count, separateMilliseconds) + (W4A4SelfTests.rowsNote(rows.count, m).map { "; \($0)" } ?? ""))
        }
    }

    /// Throws naming the first code byte or scale of the compared rows that differs from `expected`.
    static func checkCodes(_ codes: Tensor, _ scales: [Float], rows: [Int], _ expected: (codes: [UInt8], scales: [Float]), depth: Int) throws {
        let gpuRows = try W4A4SelfTestData.rows(codes, rows).withUnsafeBytes { Array($0) }
        for (index, row) in rows.enumerated() {
            guard scales[row] == expected.scales[index] else {
                throw NunchakuError.invalidArgument(context: "w4a4.fast.shared_input", reason: "row \(row): scale \(scales[row]), reference \(expected.scales[index])")
            }
            for column in 0..<depth where gpuRows[index * depth + column] != expected.codes[index * depth + column] {
                throw NunchakuError.invalidArgument(
                    context: "w4a4.fast.shared_input",
                    reason: "row \(row) column \(column): code \(gpuRows[index * depth + column]), reference \(expected.codes[index * depth + column])")
            }
        }
    }
}
