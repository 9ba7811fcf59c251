import CPUBackend
import CUDABackend
import NunchakuCore

/// `y = x·Wᵀ + bias` through the own tensor-core kernel and through cuBLASLt, against the CPU's float32 GEMM
/// (`Matmul.multiplyTransposed`) on a random subset of at most 64 rows (always the first and the last); every output
/// element is still checked for poison and NaN.
enum GEMMSelfTests {
    /// FLUX's linear layers: (K, N) of to_q/k/v and to_out (3072 → 3072), the adaLN and fused-QKV widths
    /// (3072 → 9216), the MLP (3072 → 12288 → 3072), and 3072 → 15360; M = 1 (adaLN rows), 77, a ragged 333,
    /// 4096 and 4608 tokens.
    static let fluxLayers = [(3072, 3072), (3072, 9216), (3072, 12288), (12288, 3072), (3072, 15360)]
    static let fluxRows = [1, 77, 333, 4096, 4608]

    static let cases: [SelfTestCase] = GEMMImplementation.allCases.flatMap { implementation in
        fluxLayers.flatMap { layer in fluxRows.map { gemm(implementation, .bf16, m: $0, k: layer.0, n: layer.1, bias: true) } }
            + [(3072, 3072), (12288, 3072), (3072, 15360)].flatMap { layer in
                [1, 333, 4608].map { gemm(implementation, .f16, m: $0, k: layer.0, n: layer.1, bias: true) }
            }
            + [gemm(implementation, .bf16, m: 130, k: 264, n: 136, bias: false), gemm(implementation, .f16, m: 5, k: 40, n: 24, bias: false)]
    }

    static let comparedRows = 64

    static func gemm(_ implementation: GEMMImplementation, _ dtype: DType, m: Int, k: Int, n: Int, bias: Bool) -> SelfTestCase {
        let label = "M=\(m) N=\(n) K=\(k)" + (bias ? " +bias" : "")
        return SelfTestCase(kernel: "gemm.\(implementation.rawValue)", dtype: dtype, shape: label,
                            tolerance: SelfTestShapes.outputRounding(dtype)) { env in
            let engine = try env.shared("CUDAGEMM") { CUDAGEMM(context: env.context) }
            if implementation == .cublasLt, let reason = engine.cublasLtUnavailableReason {
                throw SelfTestSkip("cuBLASLt unavailable: \(reason)")
            }
            let x = env.randomTensor([m, k], dtype)
            let weight = env.randomTensor([n, k], dtype)
            let biasValues = bias ? env.randomTensor([n], dtype) : nil
            let gpuX = try env.upload(x)
            let gpuWeight = try env.upload(weight)
            let gpuBias = try biasValues.map { try env.upload($0) }
            let output = try env.poisonedOutput([m, n], dtype)
            let launch = { try engine.linear(gpuX, weight: gpuWeight, bias: gpuBias, into: output, using: implementation) }
            try launch()
            let result = try env.download(output)

            let rows = SelfTestRows.sample(from: m, maximum: comparedRows, random: &env.random)
            var xRows = [Float]()
            xRows.reserveCapacity(rows.count * k)
            for row in rows { xRows += x.values[(row * k)..<((row + 1) * k)] }
            var reference = Matmul.multiplyTransposed(xRows, weight.values, m: rows.count, n: n, k: k)
            if let biasValues {
                for row in 0..<rows.count {
                    for column in 0..<n { reference[row * n + column] += biasValues.values[column] }
                }
            }
            var comparison = SelfTestComparison()
            try comparison.compare(result, rows: rows, width: n, with: reference)
            let milliseconds = try env.time(launch)
            let note = rows.count < m ? "CPU checks \(rows.count) of \(m) rows" : nil
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds, flops: 2 * Double(m) * Double(n) * Double(k), note: note)
        }
    }
}
