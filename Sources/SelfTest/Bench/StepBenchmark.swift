import CUDABackend
import Models
import NunchakuCore

/// How the benchmarked transformer's linear layers are stored and run.
public enum StepBenchmarkMode: String, Sendable, Codable, CaseIterable {
    /// A random BF16 model (dense layers on cuBLASLt): the baseline.
    case bf16
    /// A random SVDQuant INT4 model with the exact W4A4 numerics.
    case exact
    /// The same INT4 model with the fast (FP8) W4A4 numerics.
    case fast
    /// `fast` with the weight prefetch on (each layer's expansion queued on a side stream while its predecessor runs,
    /// `CUDAW4A4FastEngine.prefetchesWeights`): what the prefetch saves or costs.
    case fastPrefetch = "fast-prefetch"
    /// `fast` with every weight expansion in line, the out-projections' too (`CUDAW4A4FastEngine.expandsBesideAttention`
    /// off): what expanding those beside the attention kernel saves.
    case fastExpandInLine = "fast-expand-in-line"
    /// `fast` with the FP8 GEMMs' partial sums promoted along every depth (`FP8Accumulation.promoted`, the fast
    /// mode's numerics before session 5): what fast accumulation saves.
    case fastPromoted = "fast-promoted"
    /// `fast` with the sums promoted beyond depth 4096 only (`FP8Accumulation.mixed`, the default before session
    /// 13: FLUX's GELU-fed K = 12288 and 15360 GEMMs): what promoting those costs.
    case fastMixed = "fast-mixed"
    /// `fast` with cuBLASLt's first proposed algorithm for every FP8 GEMM (`CUDAW4A4FastEngine.tunesGEMMs` off):
    /// what timing its proposals saves (nothing with cuBLASLt 13.1, which proposes only one at FLUX's shapes).
    case fastHeuristic = "fast-heuristic"
    /// `fast` with each single block's `qkv_proj` and `mlp_fc1` running their own low-rank and quantize passes
    /// (`CUDAW4A4FastEngine.sharesInputPasses` off): what sharing one activation pass saves.
    case fastSeparate = "fast-separate"
    /// `fast` with the double blocks' text tokens on the main stream (`FluxCUDATransformer.overlapsBranches` off):
    /// what running them on a second stream saves.
    case fastOneStream = "fast-one-stream"
    /// `fast` with the out-projections after an fp8 attention quantizing its 16-bit output in their own activation
    /// pass (`CUDAW4A4FastEngine.quantizesInAttention` off): what the attention kernel writing their codes saves.
    case fastUnfusedAttention = "fast-unfused-attention"
    /// `fast` with every LayerNorm writing its 16-bit output for the activation pass of the fast layer it feeds
    /// (`CUDAW4A4FastEngine.quantizesInNorms` off): what writing the codes from the LayerNorm kernel saves.
    case fastUnfusedNorms = "fast-unfused-norms"
    /// `fast` with the rank-32 weight expansions on the mma.sync kernels (`CUDAW4A4FastEngine.expandsWithWGMMA`
    /// off): what the Hopper (wgmma) expansion kernels save.
    case fastMMAExpansion = "fast-mma-expansion"
    /// `fast` with the in-line weight expansions launched plainly, after the kernel before them has completed
    /// (`CUDAW4A4FastEngine.launchesExpansionsEarly` off): what the programmatic dependent launch saves.
    case fastLateExpansion = "fast-late-expansion"

    /// Whether the mode runs the fast W4A4 numerics.
    var isFast: Bool { self != .bf16 && self != .exact }
}

/// One full FLUX transformer step measured: median GPU time of the timed steps, and the memory pool's peak.
public struct StepBenchmarkRow: Sendable, Codable {
    public let mode: StepBenchmarkMode
    /// The attention operand format of the step.
    public var attention: AttentionPrecision = .bf16
    public let imageTokens: Int
    public let textTokens: Int
    public let milliseconds: Double
    /// The most device memory the pool held during the timed steps (weights included).
    public let peakBytes: Int
    /// Device memory in live buffers after loading (the weights).
    public let weightBytes: Int
    /// With `--cuda-graph`: the median step time of the same step replayed as a CUDA graph, measured right after
    /// the eager steps (nil when not asked).
    public var graphMilliseconds: Double?
    /// With `--cuda-graph`: whether the graph's last `sample` equals the eager one bit for bit.
    public var graphMatchesEager: Bool?
}

/// `nunchaku bench step`: one denoising step of a random-weight full-size FLUX model (batch 1), per mode, attention
/// precision and size.
/// Models are loaded one at a time and released before the next. With `cudaGraph`, each size is also captured into
/// a CUDA graph (`FluxCUDAGraphRunner`) and its replays timed in the same run, after the eager steps.
public enum StepBenchmark {
    /// Each mode in order (its model loaded, measured at every `imageTokens` with each of `attentions`, released),
    /// `progress` after each size.
    /// - Throws: model construction errors (`.fast` below sm_90, `.fp8` attention off sm_90a), GPU errors.
    public static func run(context: CUDAContext, config: FluxConfig, modes: [StepBenchmarkMode], attentions: [AttentionPrecision] = [.bf16],
                           imageTokens: [Int], textTokens: Int, steps: Int, cudaGraph: Bool = false,
                           progress: (StepBenchmarkRow) -> Void) throws -> [StepBenchmarkRow] {
        var results: [StepBenchmarkRow] = []
        try context.memoryPool.trim()
        for mode in modes {
            let rows = try run(context: context, config: config, mode: mode, attentions: attentions, imageTokens: imageTokens,
                               textTokens: textTokens, steps: steps, cudaGraph: cudaGraph, progress: progress)
            results += rows
            try context.synchronize()
            try context.memoryPool.trim()
        }
        return results
    }

    private static func run(context: CUDAContext, config: FluxConfig, mode: StepBenchmarkMode, attentions: [AttentionPrecision],
                            imageTokens: [Int], textTokens: Int, steps: Int, cudaGraph: Bool,
                            progress: (StepBenchmarkRow) -> Void) throws -> [StepBenchmarkRow] {
        let checkpoint = try FluxRandomCheckpoint(config: config, format: mode == .bf16 ? .bf16 : .int4, seed: 0)
        var loaded = try FluxCUDATransformer(random: checkpoint, context: context, numerics: mode.isFast ? .fast : .exact)
        loaded.overlapsBranches = mode != .fastOneStream
        loaded.fastEngine?.prefetchesWeights = mode == .fastPrefetch
        if mode == .fastPromoted { loaded.fastEngine?.accumulation = .promoted }
        if mode == .fastExpandInLine { loaded.fastEngine?.expandsBesideAttention = false }
        if mode == .fastMixed { loaded.fastEngine?.accumulation = .mixed }
        if mode == .fastHeuristic { loaded.fastEngine?.tunesGEMMs = false }
        if mode == .fastSeparate { loaded.fastEngine?.sharesInputPasses = false }
        if mode == .fastUnfusedAttention { loaded.fastEngine?.quantizesInAttention = false }
        if mode == .fastUnfusedNorms { loaded.fastEngine?.quantizesInNorms = false }
        if mode == .fastMMAExpansion { loaded.fastEngine?.expandsWithWGMMA = false }
        if mode == .fastLateExpansion { loaded.fastEngine?.launchesExpansionsEarly = false }
        try context.synchronize()
        let weightBytes = try context.memoryPool.statistics().liveBytes
        var rows: [StepBenchmarkRow] = []
        for tokens in imageTokens {
            for attention in attentions {
                let row = try measure(try loaded.withAttention(attention), mode: mode, imageTokens: tokens, textTokens: textTokens,
                                      steps: steps, cudaGraph: cudaGraph, weightBytes: weightBytes)
                progress(row)
                rows.append(row)
            }
        }
        return rows
    }

    /// One size of one model: eager steps, then (with `cudaGraph`) graph replays.
    private static func measure(_ model: FluxCUDATransformer, mode: StepBenchmarkMode, imageTokens tokens: Int, textTokens: Int,
                                steps: Int, cudaGraph: Bool, weightBytes: Int) throws -> StepBenchmarkRow {
        let context = model.context, config = model.config
        let arguments = try FluxRandomInputs.make(config: config, batch: 1, imageTokens: tokens, textTokens: textTokens, seed: 0)
        let inputs = try FluxCUDAInputs(config: config, context: context, inputs: arguments)
        try context.synchronize()
        try context.memoryPool.resetPeak()
        let timing = try model.timeSteps(inputs, warmUp: 1, steps: steps)
        let memory = try context.memoryPool.statistics()
        var row = StepBenchmarkRow(mode: mode, imageTokens: tokens, textTokens: textTokens, milliseconds: timing.medianMilliseconds,
                                   peakBytes: memory.peakReservedBytes ?? memory.peakLiveBytes, weightBytes: weightBytes)
        row.attention = model.attention
        if cudaGraph {
            let runner = try FluxCUDAGraphRunner(transformer: model, inputs: inputs)
            let replay = try runner.timeSteps(inputs, warmUp: 1, steps: steps)
            row.graphMilliseconds = replay.medianMilliseconds
            row.graphMatchesEager = replay.sample.withUnsafeBytes { graph in
                timing.sample.withUnsafeBytes { eager in graph.elementsEqual(eager) }
            }
        }
        return row
    }
}
