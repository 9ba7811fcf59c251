import CUDABackend
import NunchakuCore
import SVDQuant

/// One FLUX linear shape measured three ways in the same run: cuBLASLt BF16 (dense weight, bias epilogue), the
/// exact W4A4 path (quantize + 4-bit GEMM) and the fast FP8 path (all its steps, and each step alone).
public struct GEMMBenchmarkRow: Sendable, Codable {
    public let m: Int
    public let n: Int
    public let k: Int
    /// Every variant launched eagerly, each launch between two events.
    public let eager: GEMMVariantTimes
    /// Every variant replayed as a CUDA graph of its launches (`bench gemm --cuda-graph`), as the engine runs a
    /// captured step: no launch gaps between the kernels of one launch, nor between launches; nil when not asked for.
    public let graph: GEMMVariantTimes?

    /// TFLOP/s of the main product (2·M·N·K) in `milliseconds`.
    public func teraflops(_ milliseconds: Double) -> Double { 2 * Double(m) * Double(n) * Double(k) / (milliseconds * 1e9) }
}

/// The variants of one `GEMMBenchmarkRow` timed one way: median milliseconds per launch.
public struct GEMMVariantTimes: Sendable, Codable {
    public let bf16: Double
    public let exact: Double
    public let fast: Double
    /// The fast layer in a chain of `prefetchChain` layers of this shape, per layer, with the engine's weight prefetch
    /// on: each layer's weight expansion queued on the side stream while its predecessor runs (the first of each
    /// chain expands in line).
    public let fastPrefetched: Double
    /// `fast` given the layer's codes (`W4A4FastInput.quantized`, as the fused LayerNorm writes them for the layers it
    /// feeds): the weight expansion in line and the FP8 GEMM, no activation pass.
    public let fastFromCodes: Double
    /// The fast path's steps alone: quantize, weight expansion (the low-rank branch folded in), the FP8 GEMM.
    public let fastQuantize: Double
    public let fastWeights: Double
    public let fastGEMM: Double

    /// In `GEMMBenchmark`'s variant order.
    init(_ t: [Double]) {
        (bf16, exact, fast, fastPrefetched, fastFromCodes, fastQuantize, fastWeights, fastGEMM) = (t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7])
    }
}

/// `nunchaku bench gemm`: every FLUX W4A4 shape, exact and fast, against cuBLASLt BF16 in the same run.
public enum GEMMBenchmark {
    /// FLUX.1's linear shapes (N, K): attention out, fused QKV, MLP up, MLP down (GELU-fed), single-block fused in
    /// (QKV + MLP up) and out (attention + MLP down).
    public static let fluxShapes: [(n: Int, k: Int)] = [(3072, 3072), (9216, 3072), (12288, 3072), (3072, 12288), (21504, 3072), (3072, 15360)]
    /// Input sets cycled between launches, so activations are not served from L2 (50 MB on an H100/H200).
    static let rotatingInputs = 3
    /// Layers of one shape run one after the other for the prefetched time.
    public static let prefetchChain = 8

    /// Every shape of `fluxShapes` at each of `rows` (random INT4 layers, random bf16 inputs), `progress` called
    /// after each row. Each variant is timed in `rounds` rounds (every variant once per round, in turn) of
    /// `repetitions` timed launches, and keeps the median of its rounds' medians; the BF16 baseline runs on `gemm`.
    /// With `cudaGraph`, every round also times every variant as a CUDA graph of `repetitions` launches.
    /// - Throws: `NunchakuError.unsupported` without cuBLASLt (the baseline); GPU and graph-capture errors.
    public static func run(context: CUDAContext, gemm: CUDAGEMM, engine: CUDAW4A4FastEngine, rows: [Int], repetitions: Int,
                           rounds: Int, cudaGraph: Bool = false, progress: (GEMMBenchmarkRow) -> Void) throws -> [GEMMBenchmarkRow] {
        guard gemm.defaultImplementation == .cublasLt else {
            throw NunchakuError.unsupported(context: "bench gemm", reason: "cuBLASLt is the baseline: \(gemm.cublasLtUnavailableReason ?? "unavailable")")
        }
        let stream = context.defaultStream
        var random = SelfTestRandom(seed: 2026)
        var results: [GEMMBenchmarkRow] = []
        for shape in fluxShapes {
            let layer = W4A4SelfTestLayer.int4(shape.k, shape.n, unsigned: shape.k == 12288)
            let weights = try W4A4SelfTestData.weights(layer, &random)
            let exact = try CUDASVDQW4A4Linear(weights: weights, activationDType: .bf16, context: context, stream: stream)
            let fast = try CUDASVDQW4A4FastLinear(weights: weights, activationDType: .bf16, engine: engine, stream: stream)
            let chain = try [fast] + (1..<prefetchChain).map { _ in
                try CUDASVDQW4A4FastLinear(weights: weights, activationDType: .bf16, engine: engine, stream: stream)
            }
            let dense = try DeviceTensor(uploading: W4A4SelfTestData.uniform([shape.n, shape.k], -0.05...0.05, &random), context: context, stream: stream)
            let bias = try DeviceTensor(uploading: weights.canonical.bias ?? W4A4SelfTestData.uniform([shape.n], -0.5...0.5, &random),
                                        context: context, stream: stream)
            for m in rows {
                let inputs = try (0..<rotatingInputs).map { _ in
                    try DeviceTensor(uploading: RandomTensor(shape: [m, shape.k], dtype: .bf16, range: layer.inputRange, seed: random.next()).tensor,
                                     context: context, stream: stream)
                }
                let output = try DeviceTensor(shape: [m, shape.n], dtype: .bf16, context: context, stream: stream)
                let activations = try exact.makeQuantizedActivations(rows: m, stream: stream)
                let quantized = try fast.quantize(inputs[0], stream: stream)
                let codes = try inputs.map { try fast.quantize($0, stream: stream) }
                let folded = try fast.foldedWeights(stream: stream)
                // In GEMMVariantTimes' order: each variant's launch for repetition `index`, how many layers one launch
                // runs, and whether the engine prefetches weights meanwhile.
                typealias Variant = (layers: Int, prefetches: Bool, launch: (Int) throws -> Void)
                let variants: [Variant] = [
                    (1, false, { try gemm.linear(inputs[$0 % rotatingInputs], weight: dense, bias: bias, into: output, stream: stream) }),
                    (1, false, {
                        try exact.quantize(inputs[$0 % rotatingInputs], into: activations, stream: stream)
                        try exact.multiply(activations, into: output, stream: stream)
                    }),
                    (1, false, { try fast.forward(inputs[$0 % rotatingInputs], into: output, stream: stream) }),
                    (prefetchChain, true, { repetition in
                        for (index, layer) in chain.enumerated() {
                            try layer.forward(inputs[(repetition + index) % rotatingInputs], into: output, stream: stream)
                        }
                    }),
                    (1, false, { try fast.forward(.quantized(codes[$0 % rotatingInputs]), into: output, stream: stream) }),
                    (1, false, { try fast.quantize(inputs[$0 % rotatingInputs], into: quantized, stream: stream) }),
                    (1, false, { _ in try fast.foldedWeights(into: folded, stream: stream) }),
                    (1, false, { _ in try fast.multiply(quantized, weights: folded, into: output, stream: stream) }),
                ]
                func timed(_ variant: Variant, graph: Bool) throws -> Double {
                    // The prefetch is set for the variant's whole timing (warm-up and capture included): the engine
                    // learns the layers' order from repeated calls, and turning the prefetch off forgets the order.
                    let prefetching = engine.prefetchesWeights
                    engine.prefetchesWeights = variant.prefetches
                    defer { engine.prefetchesWeights = prefetching }
                    let milliseconds = graph
                        ? try BenchTiming.graphMedian(context, stream: stream, label: "bench gemm (\(m), \(shape.n), \(shape.k))",
                                                      warmUp: 3, repetitions: repetitions, variant.launch)
                        : try BenchTiming.median(context, stream: stream, warmUp: 3, repetitions: repetitions, variant.launch)
                    return milliseconds / Double(variant.layers)
                }
                // Each round times every variant once (eagerly, then as a graph), so a GPU whose clocks drift (FP8
                // GEMMs run into the power cap) slows every variant alike; each keeps its median round.
                var eager = [[Double]](repeating: [], count: variants.count)
                var graph = [[Double]](repeating: [], count: variants.count)
                for _ in 0..<max(1, rounds) {
                    for (index, variant) in variants.enumerated() {
                        eager[index].append(try timed(variant, graph: false))
                        if cudaGraph { graph[index].append(try timed(variant, graph: true)) }
                    }
                }
                func medians(_ times: [[Double]]) -> GEMMVariantTimes { GEMMVariantTimes(times.map { $0.sorted()[$0.count / 2] }) }
                let row = GEMMBenchmarkRow(m: m, n: shape.n, k: shape.k, eager: medians(eager), graph: cudaGraph ? medians(graph) : nil)
                progress(row)
                results.append(row)
            }
        }
        return results
    }
}
