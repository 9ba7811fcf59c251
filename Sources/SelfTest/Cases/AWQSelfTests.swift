import CUDABackend
import NunchakuCore
import SVDQuant

/// `awq.gemv`: the AWQ W4A16 kernels (awq_gemv.cu, chosen by AWQGEMVLaunch) against the CPU reference
/// `AWQW4A16Linear`, for FLUX's adaLN modulation layers (3072 → 18432 in 6 chunks, 3072 → 9216 in 3) at 1, 2 and 4
/// rows (one, two and four rows per block), 3, 5 and 9 rows (a block's last rows empty), 77 rows (20 row blocks),
/// ragged layers the layout allows (K a multiple of 64 but not of 1024, N a multiple of 4 but not of the channels a
/// block owns) and a K whose row of x needs more than the default shared memory (32768), in the natural layout and
/// in the chunk-major layout (`[S, M, N/S]`, compared with the CPU output split into its chunks). Dequantization and
/// products are the same half-precision operations; the fp32 sum runs in another order (per lane, then a warp
/// reduction), which moves an output across a rounding boundary rarely: tolerance 1e-3 (bf16) / 5e-4 (f16).
enum AWQSelfTests {
    static let cases: [SelfTestCase] =
        [(18432, 6), (9216, 3)].flatMap { layer in
            [1, 2, 4].flatMap { m in
                [gemv(.bf16, m: m, n: layer.0, chunks: layer.1, .natural), gemv(.f16, m: m, n: layer.0, chunks: layer.1, .chunks)]
            }
        }
        + [gemv(.bf16, m: 1, n: 18432, chunks: 6, .chunks), gemv(.bf16, m: 3, n: 18432, chunks: 6, .chunks),
           gemv(.bf16, m: 5, n: 9216, chunks: 3, .natural), gemv(.bf16, m: 77, n: 18432, chunks: 6, .chunks)]
        + [gemv(.bf16, m: 1, n: 1004, k: 1088, chunks: 4, .natural), gemv(.f16, m: 3, n: 1004, k: 1088, chunks: 4, .chunks),
           gemv(.bf16, m: 9, n: 1004, k: 1088, chunks: 4, .natural), gemv(.bf16, m: 2, n: 20, k: 192, chunks: 2, .chunks),
           gemv(.f16, m: 3, n: 64, k: 32768, chunks: 2, .natural)]

    static let inFeatures = 3072

    /// Random AWQ weights [N, 3072] of `chunks` modulation chunks (bf16): scales 0.001–0.003, zeros −(2…8)·scale-ish,
    /// bias ±1, so outputs stay near 1.
    static func weights(n: Int, chunks: Int, inFeatures k: Int = inFeatures, _ random: inout SelfTestRandom) throws -> AWQW4A16Weights {
        let groups = k / 64
        return try AWQW4A16Weights(
            name: "selftest",
            tensors: AWQW4A16Tensors(
                qweight: try Tensor(shape: [n, k / 2], dtype: .u8, bytes: W4A4SelfTestData.randomBytes(n * k / 2, &random)),
                wscales: W4A4SelfTestData.uniform([groups, n], 0.001...0.003, &random),
                wzeros: W4A4SelfTestData.uniform([groups, n], -0.024...(-0.006), &random),
                bias: W4A4SelfTestData.uniform([n], -1...1, &random)),
            layout: .canonical, modulation: try ModulationInterleave(chunks: chunks))
    }

    static func gemv(_ dtype: DType, m: Int, n: Int, k: Int = inFeatures, chunks: Int, _ layout: CUDAAWQW4A16Linear.OutputLayout) -> SelfTestCase {
        let shape = "M=\(m) N=\(n) K=\(k)" + (layout == .chunks ? " chunks=\(chunks)" : "")
        return SelfTestCase(kernel: "awq.gemv", dtype: dtype, shape: shape, tolerance: dtype == .bf16 ? 1e-3 : 5e-4) { env in
            let groups = k / 64
            let weights = try Self.weights(n: n, chunks: chunks, inFeatures: k, &env.random)
            let gpu = try CUDAAWQW4A16Linear(weights: weights, activationDType: ActivationDType(dtype), context: env.context, stream: env.stream)
            let x = env.randomTensor([m, k], dtype)
            let gpuX = try env.upload(x)
            let output = try env.poisonedOutput(try gpu.outputShape(gpuX, layout), dtype)
            let launch = { try gpu.forward(gpuX, layout: layout, into: output, stream: env.stream) }
            try launch()
            let result = try env.download(output)
            var reference = try AWQW4A16Linear(weights: weights).forward(x.tensor).floats()
            if layout == .chunks {
                // [M, S·D] → [S, M, D].
                let width = n / chunks
                reference = (0..<(chunks * m * width)).map { index in
                    let chunk = index / (m * width), row = (index / width) % m, column = index % width
                    return reference[row * n + chunk * width + column]
                }
            }
            var comparison = SelfTestComparison()
            try comparison.compare(result, with: reference)
            let bytes = Double(n * k / 2 + 2 * n * groups * 2 + n * 2 + m * k * 2 + m * n * 2)
            return SelfTestOutcome(comparison: comparison, milliseconds: try env.time(launch), flops: 2 * Double(m * n * k), bytes: bytes)
        }
    }
}
