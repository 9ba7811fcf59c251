import CPUBackend
import CUDABackend
import NunchakuCore

/// Attention against `CPUOps.attention` (fp32 softmax), for each kernel: `attention` is the FA2 kernel (every GPU),
/// `attention.wgmma` the Hopper kernel (skipped where it cannot run). For long sequences the CPU reference covers a
/// random subset of query tokens (always the first and the last) with every key; the GPU output is still checked
/// everywhere for poison and NaN.
enum AttentionSelfTests {
    static let cases: [SelfTestCase] = SelfTestShapes.dtypes.flatMap { dtype in
        AttentionKernel.allCases.flatMap { kernel in
            [
                attention(dtype, kernel, batch: 1, heads: SelfTestShapes.fluxHeads, queries: SelfTestShapes.fluxTokens,
                          keys: SelfTestShapes.fluxTokens, headDim: 128, masked: false),
                attention(dtype, kernel, batch: 1, heads: SelfTestShapes.fluxHeads, queries: 1536, keys: 1536, headDim: 128,
                          masked: false),
                attention(dtype, kernel, batch: 2, heads: 3, queries: 333, keys: 333, headDim: 128, masked: true),
                attention(dtype, kernel, batch: 1, heads: 2, queries: 1, keys: 1, headDim: 128, masked: false),
                attention(dtype, kernel, batch: 1, heads: 5, queries: 700, keys: 129, headDim: 128, masked: false),
                attention(dtype, kernel, batch: 2, heads: 2, queries: 130, keys: 1000, headDim: 128, masked: true),
                attention(dtype, kernel, batch: 2, heads: 4, queries: 77, keys: 77, headDim: 64, masked: false),
                attention(dtype, kernel, batch: 2, heads: 2, queries: 100, keys: 257, headDim: 64, masked: true),
                attention(dtype, kernel, batch: 1, heads: 24, queries: 1024, keys: 1024, headDim: 64, masked: false),
            ]
        }
    }

    /// The case name of each kernel (`attention` stays the FA2 kernel's, as before the wgmma kernel existed).
    static func caseKernel(_ kernel: AttentionKernel) -> String { kernel == .fa2 ? "attention" : "attention.\(kernel)" }

    /// Bf16 and f16 probabilities are rounded before P·V (as in FlashAttention), on top of the output's rounding.
    static func tolerance(_ dtype: DType) -> Double { dtype == .bf16 ? 2e-2 : 5e-3 }

    /// Query tokens compared with the CPU at most.
    static let comparedQueries = 48

    /// A key mask `[B, Skv]` (u8): sample 0 sees every key; later samples lose a random tail of up to 60% (never all
    /// keys).
    static func randomMask(batch: Int, keys: Int, _ env: SelfTestEnvironment) -> Tensor {
        var allowed = [Float](repeating: 1, count: batch * keys)
        for sample in 1..<max(1, batch) {
            let kept = max(1, keys - Int(env.random.next() % UInt64(max(1, keys * 6 / 10))))
            for token in kept..<keys { allowed[sample * keys + token] = 0 }
        }
        return Tensor(allowed, shape: [batch, keys], dtype: .u8)
    }

    /// `CPUOps.attention` (float32) for the query tokens `tokens` of every sample of `query` `[B, Sq, H, d]` (as
    /// the values of `key`'s shape tell), against all keys; `rows` are those queries' row indices in `[B·Sq]`.
    static func referenceRows(query: [Float], key: Tensor, value: Tensor, keyMask: Tensor?, tokens: [Int]) throws
        -> (rows: [Int], values: [Float]) {
        let (batch, heads, headDim) = (key.shape[0], key.shape[2], key.shape[3])
        let rowWidth = heads * headDim, queries = query.count / (batch * rowWidth)
        var subset = [Float]()
        subset.reserveCapacity(batch * tokens.count * rowWidth)
        for sample in 0..<batch {
            for token in tokens {
                let start = (sample * queries + token) * rowWidth
                subset += query[start..<(start + rowWidth)]
            }
        }
        let reference = try CPUOps.attention(
            query: Tensor(subset, shape: [batch, tokens.count, heads, headDim]), key: key, value: value, keyMask: keyMask)
        return ((0..<batch).flatMap { sample in tokens.map { sample * queries + $0 } }, reference.floats())
    }

    static func attention(_ dtype: DType, _ kernel: AttentionKernel, batch: Int, heads: Int, queries: Int, keys: Int, headDim: Int,
                          masked: Bool) -> SelfTestCase {
        let label = "B=\(batch) H=\(heads) Sq=\(queries) Skv=\(keys) d=\(headDim)" + (masked ? " masked" : "")
        return SelfTestCase(kernel: caseKernel(kernel), dtype: dtype, shape: label, tolerance: tolerance(dtype)) { env in
            let target = try env.context.kernels.target()
            let sharedMemory = env.context.device.maxSharedMemoryPerBlockOptin
            guard kernel.isAvailable(target: target, sharedMemoryLimit: sharedMemory, headDim: headDim) else {
                throw SelfTestSkip("the \(kernel) kernel needs an sm_90a GPU; kernels here are built for \(target)")
            }
            let query = env.randomTensor([batch, queries, heads, headDim], dtype, in: -2...2)
            let key = env.randomTensor([batch, keys, heads, headDim], dtype, in: -2...2)
            let value = env.randomTensor([batch, keys, heads, headDim], dtype)
            let mask = masked ? randomMask(batch: batch, keys: keys, env) : nil
            let gpuQuery = try env.upload(query)
            let gpuKey = try env.upload(key)
            let gpuValue = try env.upload(value)
            let gpuMask = try mask.map { try DeviceTensor(uploading: $0, context: env.context, stream: env.stream) }
            let output = try env.poisonedOutput(query.shape, dtype)
            let launch = {
                try env.context.attention(query: gpuQuery, key: gpuKey, value: gpuValue, keyMask: gpuMask, kernel: kernel, into: output)
            }
            try launch()
            let result = try env.download(output)

            let tokens = SelfTestRows.sample(from: queries, maximum: comparedQueries, random: &env.random)
            let reference = try referenceRows(query: query.values, key: key.float32, value: value.float32, keyMask: mask, tokens: tokens)
            var comparison = SelfTestComparison()
            try comparison.compare(result, rows: reference.rows, width: heads * headDim, with: reference.values)
            let milliseconds = try env.time(launch)
            let flops = 4 * Double(batch * heads) * Double(queries) * Double(keys) * Double(headDim)
            let note = tokens.count < queries ? "CPU checks \(tokens.count) of \(queries) queries" : nil
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds, flops: flops, note: note)
        }
    }
}
