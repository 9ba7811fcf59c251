import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Nunchaku

/// `nunchaku bench`: the W4A4 GEMMs and the full FLUX step (exact and fast numerics against cuBLASLt BF16), the GPU
/// text encoders and VAE alone, and the whole FLUX pipeline, all with random weights and no files.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark FLUX on the GPU with random weights: W4A4 GEMMs, transformer step, stages, whole pipeline.",
        discussion: """
        gemm: every FLUX linear shape (N, K) at each --rows M: cuBLASLt BF16 (dense weight + bias), the exact W4A4 \
        layer (quantize + 4-bit GEMM) and the fast FP8 layer (quantize + weight expansion with the low-rank branch + FP8 GEMM, \
        and each step alone; prefetched: in a chain of 8 layers, each layer's expansion on the side stream while the one before \
        runs; from codes: the layer given its codes, as the fused LayerNorm hands them to the layers it feeds: weight \
        expansion in line and the FP8 GEMM, no activation pass). TFLOP/s count the main product 2·M·N·K; ratios are BF16 time over the variant's. \
        Each variant: median of --repeats (default 20) launches after warm-up, from CUDA events, inputs rotating over three buffers, \
        in --rounds rounds (default 3; each round times every variant in turn, so clocks that drift under the power cap \
        slow all alike), the median round kept. --cuda-graph also times every variant, in the same rounds, as a CUDA \
        graph of its --repeats launches (as the engine runs a captured step: no launch gaps between a layer's kernels), \
        printed as a second line per row, "graph".

        step: one FLUX.1-dev transformer step with random weights (batch 1, --tokens-text text tokens) at each \
        --tokens-image (1024 = 512×512 px, 4096 = 1024×1024 px): a BF16 model, then an INT4 model with exact, then \
        with fast numerics (--modes; fast-prefetch: fast with the weight prefetch on (each layer's expansion on a side stream while the layer before runs); fast-expand-in-line: fast with the out-projections' weight expansions in line instead of beside the attention kernel; fast-promoted: fast with promoted FP8 accumulation everywhere; fast-mixed: fast with FP8 sums promoted beyond depth 4096 (the GELU-fed fc2 GEMMs); fast-heuristic: fast with cuBLASLt's first proposed FP8 algorithm instead of the fastest of its proposals; fast-separate: fast with the single blocks' qkv and mlp_in quantizing their input separately; fast-one-stream: fast with the double blocks' text tokens on the main stream instead of a second one; fast-unfused-attention: fast with the out-projections after an fp8 attention quantizing its 16-bit output themselves instead of the attention writing their codes; fast-unfused-norms: fast with each LayerNorm writing a 16-bit output that the fast layer it feeds quantizes, instead of writing the layer's codes itself; fast-mma-expansion: fast with the rank-32 weight expansions on the mma.sync kernels instead of the Hopper wgmma ones; fast-late-expansion: fast with the in-line weight expansions launched after the kernel before them completes instead of as its programmatic dependents), each loaded alone; median of --steps (default 5) steps after one warm-up, and \
        the memory pool's peak. The fast numerics need sm_90+. --cuda-graph also captures each step into a CUDA \
        graph and times its replays right after the eager steps (same model, same inputs): the time saved and \
        whether the output is bit-identical. --diffusers FILE (the --json of scripts/diffusers_step_bench.py, run on \
        the same GPU) adds each step's speed-up over diffusers BF16 eager and torch.compile at its size.

        stages: the GPU VAE decoder and text encoders alone (--stage vae, clip, t5, t5-awq; default all): FLUX.1 VAE \
        decoder to --image-size² pixels, CLIP-L (77 tokens), T5-XXL bf16 or with 4-bit TinyChat block linears \
        (--t5-tokens tokens). Each is loaded, run once to warm up, then timed --repeats (default 3) times (wall \
        clock, host tensors in and out; median); memory: the pool's peak live and reserved bytes, weights included.

        pipeline: FluxPipeline.generate end to end on GPU --device with every model FLUX.1-sized and random: the \
        --config transformer as SVDQuant INT4 (--numerics exact or fast), CLIP-L, T5-XXL (--t5 bf16, or awq for \
        Nunchaku's 4-bit format) and the FLUX VAE, all on the GPU; synthetic character-level tokenizers. The models \
        are built once (load time), then per --size one untimed 1-step run (kernels compile) and one timed run of \
        --steps steps (default: 28 for dev, 4 for schnell): CLIP, T5, each step (median) and all, VAE decode, total, \
        and the memory pool's peak; the image is checked to be finite and not constant.

        all: gemm and step.
        """)

    enum Part: String, ExpressibleByArgument, CaseIterable { case gemm, step, stages, pipeline, all }

    @Argument(help: "gemm, step, stages, pipeline or all (gemm + step).")
    var part: Part = .all

    @Option(parsing: .upToNextOption, help: "gemm: rows M.")
    var rows = [4608, 1536]

    @Option(help: "gemm: timed launches per variant and round (default 20); stages: timed runs per stage (default 3).")
    var repeats: Int?

    @Option(help: "gemm: rounds, each timing every variant in turn; each variant keeps its median round.")
    var rounds = 3

    @Option(parsing: .upToNextOption, help: "step: image tokens.")
    var tokensImage = [1024, 4096]

    @Option(help: "step: text tokens.")
    var tokensText = 512

    @Option(parsing: .upToNextOption, help: "step: attention operand formats, bf16 and/or fp8 (e4m3 operands, sm_90a); pipeline: one of them.")
    var attention: [AttentionPrecision] = [.bf16]

    @Option(parsing: .upToNextOption, help: "step: bf16, exact, fast, fast-prefetch (fast with the weight prefetch), fast-expand-in-line (fast without the out-projections' expansions beside the attention), fast-promoted (fast with promoted FP8 sums everywhere), fast-mixed (fast with FP8 sums promoted beyond depth 4096), fast-heuristic (fast without timing cuBLASLt's FP8 algorithms), fast-separate (fast without the single blocks' shared qkv + mlp_in activation pass), fast-one-stream (fast without the text-token stream), fast-unfused-attention (fast with the out-projections quantizing the fp8 attention's 16-bit output themselves), fast-unfused-norms (fast with LayerNorm and the fed layer's quantize pass as two kernels), fast-mma-expansion (fast with the mma.sync weight expansion instead of the wgmma one), fast-late-expansion (fast with the weight expansions launched after the kernel before them completes, not as its programmatic dependents).")
    var modes = ["bf16", "exact", "fast"]

    @Option(help: "step: timed steps per mode and size (default 5); pipeline: denoising steps (default 28 for dev, 4 for schnell).")
    var steps: Int?

    @Option(help: "step, pipeline: flux-dev, flux-schnell or a config.json.")
    var config = "flux-dev"

    @Option(help: "gemm, pipeline: where \(FP8Accumulation.optionHelp).")
    var fp8Accumulation: FP8Accumulation = .standard

    @Flag(help: "gemm: the fast layers' FP8 GEMM with cuBLASLt's first proposed algorithm, not the fastest of its proposals timed on first use.")
    var fp8Heuristic = false

    @Flag(help: "gemm: print what tuning measured for each cuBLASLt GEMM, BF16 and FP8 (every candidate algorithm's time and configuration).")
    var showTuning = false

    @Flag(help: "gemm: launch the fast layers' weight expansions after the kernel before them completes, not early as its programmatic dependents (sm_90a).")
    var lateExpansion = false

    @Option(name: .customLong("stage"), help: "stages: vae, clip, t5 or t5-awq; repeat for several (default: all).")
    var stages: [String] = []

    @Option(help: "stages: side of the decoded image in pixels (latents are an eighth of it).")
    var imageSize = 1024

    @Option(help: "stages: T5 sequence length.")
    var t5Tokens = 512

    @Option(parsing: .upToNextOption, help: "pipeline: image sides in pixels, multiples of 16.")
    var size = [1024]

    @Option(help: "pipeline: T5 weights, bf16 or awq (Nunchaku's 4-bit T5).")
    var t5: FluxRandomPipeline.T5Weights = .bf16

    @Option(help: "pipeline: the transformer's W4A4 numerics, exact or fast (FP8, sm_90+).")
    var numerics: W4A4Numerics = .exact

    @Option(help: "GPU index.")
    var device = 0
    @Flag(name: .customLong("cuda-graph"),
          help: "step: also replay each step as a CUDA graph and report the time it saves; gemm: also time every variant as a CUDA graph of its launches.")
    var cudaGraph = false

    @Option(name: .customLong("diffusers"),
            help: "step: the --json of scripts/diffusers_step_bench.py, run on the same GPU: also print each step's speed-up over diffusers BF16 eager and torch.compile at its size.")
    var diffusersPath: String?

    @Option(name: .customLong("json"), help: "Also write the results as JSON to this file.")
    var jsonPath: String?

    func validate() throws {
        guard (repeats ?? 1) >= 1, rounds >= 1, (steps ?? 1) >= 1, !rows.isEmpty, rows.allSatisfy({ $0 >= 1 }), tokensImage.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--repeats, --rounds, --steps, --rows and --tokens-image must be at least 1")
        }
        if part == .pipeline, attention.count != 1 { throw ValidationError("pipeline takes one --attention value") }
        if diffusersPath != nil, part != .step, part != .all { throw ValidationError("--diffusers is for bench step (or all)") }
        for mode in modes where StepBenchmarkMode(rawValue: mode) == nil {
            throw ValidationError("--modes takes \(StepBenchmarkMode.allCases.map(\.rawValue).joined(separator: ", ")), not \(mode)")
        }
        for stage in stages where StageBenchmark.Stage(rawValue: stage) == nil {
            throw ValidationError("unknown stage \(stage); use vae, clip, t5 or t5-awq")
        }
        for side in size where side < 16 || side % 16 != 0 {
            throw ValidationError("--size \(side): image sides are multiples of 16 pixels")
        }
        guard imageSize >= 8, imageSize % 8 == 0, t5Tokens >= 1 else {
            throw ValidationError("--image-size must be a multiple of 8 and --t5-tokens at least 1")
        }
    }

    struct Report: Codable {
        var device: String
        var gemm: [GEMMBenchmarkRow] = []
        var step: [StepBenchmarkRow] = []
        var stages: [StageBenchmark.Timing] = []
        var pipeline: FluxPipelineBenchmarkReport?
        var diffusers: DiffusersStepBaseline?
    }

    func run() throws {
        try reportingFailure(of: "bench") {
            let diffusers = try diffusersPath.map(DiffusersStepBaseline.init(path:))   // a bad file fails before any GPU work
            let context = try CUDAContext(deviceIndex: device)
            var report = Report(device: "\(context.device.name) (\(context.device.computeCapability))", diffusers: diffusers)
            print("nunchaku bench \(part.rawValue) on \(report.device)")
            if part == .gemm || part == .all {
                let engine = try CUDAW4A4FastEngine(context: context, accumulation: fp8Accumulation, tuneGEMMs: !fp8Heuristic)
                engine.launchesExpansionsEarly = !lateExpansion
                print("cuBLASLt \(engine.cublasLtVersion), FP8 accumulation \(engine.accumulation.rawValue), FP8 algorithms \(engine.tunesGEMMs ? "timed" : "heuristic"), "
                      + "weight expansions launched \(engine.launchesExpansionsEarly ? "early" : "late")")
                print("          M      N      K | bf16 ms   TF/s    | exact ms TF/s ×bf16 | fast ms  TF/s ×bf16 | prefetched ms TF/s ×bf16 | from codes ms TF/s ×bf16 | fast steps ms: quantize weights fp8-gemm")
                let gemm = CUDAGEMM(context: context)
                report.gemm = try GEMMBenchmark.run(context: context, gemm: gemm, engine: engine, rows: rows, repetitions: repeats ?? 20,
                                                    rounds: rounds, cudaGraph: cudaGraph) { row in
                    print(line(row, row.eager, label: "eager"))
                    if let graph = row.graph { print(line(row, graph, label: "graph")) }
                }
                if showTuning {
                    print("cuBLASLt tuning (best round in ms, the algorithm's configuration), BF16 then FP8:")
                    print((gemm.cublasLtTuningLog + engine.fp8TuningLog).joined(separator: "\n"))
                }
            }
            if part == .step || part == .all {
                let modes = modes.compactMap(StepBenchmarkMode.init(rawValue:))
                let steps = steps ?? 5
                print("step: random \(config), batch 1, \(tokensText) text tokens; median of \(steps) steps")
                if let baseline = diffusers {
                    let note = baseline.device == context.device.name ? "" : " (NOT this GPU: the speed-ups below compare two machines)"
                    print("diffusers baseline from \(baseline.device)\(note)")
                }
                var done: [StepBenchmarkRow] = []
                report.step = try StepBenchmark.run(
                    context: context, config: try FluxConfig.named(config), modes: modes, attentions: attention, imageTokens: tokensImage,
                    textTokens: tokensText, steps: steps, cudaGraph: cudaGraph) { row in
                    done.append(row)
                    print(line(row, baseline: done) + diffusersText(row, diffusers))
                }
            }
            if part == .stages { report.stages = try runStages(context: context) }
            if part == .pipeline { report.pipeline = try runPipeline(context: context) }
            if let jsonPath {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(report).write(to: URL(fileURLWithPath: jsonPath))
            }
            if let pipeline = report.pipeline { try checkImages(pipeline) }
        }
    }

    /// One way of timing a GEMM row (`label`: eager or graph); ratios against the BF16 time measured the same way.
    private func line(_ row: GEMMBenchmarkRow, _ t: GEMMVariantTimes, label: String) -> String {
        func cell(_ ms: Double) -> String { String(format: "%7.3f %5.0f %4.2f", ms, row.teraflops(ms), t.bf16 / ms) }
        return label.padding(toLength: 5, withPad: " ", startingAt: 0)
            + String(format: " %5d %6d %6d | %7.3f %5.0f     | ", row.m, row.n, row.k, t.bf16, row.teraflops(t.bf16))
            + cell(t.exact) + " | " + cell(t.fast) + " | " + cell(t.fastPrefetched) + " | " + cell(t.fastFromCodes)
            + String(format: " | %.3f %.3f %.3f", t.fastQuantize, t.fastWeights, t.fastGEMM)
    }

    /// A step row, with its speed-up over the BF16 row of the same size when there is one.
    private func line(_ row: StepBenchmarkRow, baseline: [StepBenchmarkRow]) -> String {
        let bf16 = baseline.first { $0.mode == .bf16 && $0.attention == .bf16 && $0.imageTokens == row.imageTokens }
        let ratio = bf16.map { String(format: ", %.2f× bf16", $0.milliseconds / row.milliseconds) } ?? ""
        let label = row.mode.rawValue + (row.attention == .fp8 ? " fp8-attn" : "")
        return label.padding(toLength: max(11, label.count), withPad: " ", startingAt: 0)
            + String(format: " %5d image tokens: %8.1f ms", row.imageTokens, row.milliseconds)
            + ratio + ", peak \(gib(row.peakBytes)), weights \(gib(row.weightBytes))" + graphText(row)
    }

    /// `; …× diffusers eager, …× diffusers compile` where the baseline measured the row's size.
    private func diffusersText(_ row: StepBenchmarkRow, _ baseline: DiffusersStepBaseline?) -> String {
        guard let baseline else { return "" }
        let ratios = DiffusersStepBaseline.modes.compactMap { mode in
            baseline.milliseconds(mode, imageTokens: row.imageTokens).map { String(format: "%.2f", $0 / row.milliseconds) + "× diffusers \(mode)" }
        }
        return ratios.isEmpty ? "" : "; " + ratios.joined(separator: ", ")
    }

    /// `; graph … ms (saves …)` for a row measured with `--cuda-graph`.
    private func graphText(_ row: StepBenchmarkRow) -> String {
        guard let graph = row.graphMilliseconds else { return "" }
        let saved = row.milliseconds - graph
        return String(format: "; graph %.1f ms (saves %.2f ms, %.1f%%, %.3f× eager)", graph, saved,
                      100 * saved / row.milliseconds, row.milliseconds / graph)
            + (row.graphMatchesEager == true ? ", same output" : ", OUTPUT DIFFERS from eager")
    }
}
