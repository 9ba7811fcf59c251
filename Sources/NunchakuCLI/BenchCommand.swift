import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Nunchaku

/// `nunchaku bench`: the W4A4 GEMMs and the full FLUX step, exact and fast numerics against cuBLASLt BF16.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark FLUX's W4A4 GEMMs and transformer step: BF16, exact and fast numerics in one run.",
        discussion: """
        gemm: every FLUX linear shape (N, K) at each --rows M: cuBLASLt BF16 (dense weight + bias), the exact W4A4 \
        layer (quantize + 4-bit GEMM) and the fast FP8 layer (low-rank down + quantize + weight expansion + FP8 GEMM, \
        and each step alone). TFLOP/s count the main product 2·M·N·K; ratios are BF16 time over the variant's. \
        Median of --repeats launches after warm-up, from CUDA events, inputs rotating over three buffers.

        step: one FLUX.1-dev transformer step with random weights (batch 1, --tokens-text text tokens) at each \
        --tokens-image (1024 = 512×512 px, 4096 = 1024×1024 px): a BF16 model, then an INT4 model with exact, then \
        with fast numerics (--modes), each loaded alone; median of --steps steps after one warm-up, and the memory \
        pool's peak. The fast numerics need sm_90+.
        """)

    enum Part: String, ExpressibleByArgument, CaseIterable { case gemm, step, all }

    @Argument(help: "gemm, step or all.")
    var part: Part = .all

    @Option(parsing: .upToNextOption, help: "gemm: rows M.")
    var rows = [4608, 1536]

    @Option(help: "gemm: timed launches per variant.")
    var repeats = 20

    @Option(parsing: .upToNextOption, help: "step: image tokens.")
    var tokensImage = [1024, 4096]

    @Option(help: "step: text tokens.")
    var tokensText = 512

    @Option(parsing: .upToNextOption, help: "step: bf16, exact, fast.")
    var modes = ["bf16", "exact", "fast"]

    @Option(help: "step: timed steps per mode and size.")
    var steps = 5

    @Option(help: "step: flux-dev, flux-schnell or a config.json.")
    var config = "flux-dev"

    @Flag(help: "gemm: the fast layers' FP8 GEMM with cuBLASLt's fast accumulation (see docs/hopper.md).")
    var fastAccumulation = false

    @Option(name: .customLong("json"), help: "Also write the results as JSON to this file.")
    var jsonPath: String?

    func validate() throws {
        guard repeats >= 1, steps >= 1, !rows.isEmpty, rows.allSatisfy({ $0 >= 1 }), tokensImage.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--repeats, --steps, --rows and --tokens-image must be at least 1")
        }
        for mode in modes where StepBenchmarkMode(rawValue: mode) == nil {
            throw ValidationError("--modes takes bf16, exact and fast, not \(mode)")
        }
    }

    struct Report: Codable {
        var device: String
        var gemm: [GEMMBenchmarkRow] = []
        var step: [StepBenchmarkRow] = []
    }

    func run() throws {
        try reportingFailure(of: "bench") {
            let context = try CUDAContext(deviceIndex: 0)
            var report = Report(device: "\(context.device.name) (\(context.device.computeCapability))")
            print("nunchaku bench on \(report.device)")
            if part != .step {
                let engine = try CUDAW4A4FastEngine(context: context, fastAccumulation: fastAccumulation)
                print("cuBLASLt \(engine.cublasLtVersion), FP8 fast accumulation \(engine.fastAccumulation)")
                print("    M      N      K | bf16 ms   TF/s    | exact ms TF/s ×bf16 | fast ms  TF/s ×bf16 | fast steps ms: low-rank quantize weights fp8-gemm")
                report.gemm = try GEMMBenchmark.run(context: context, engine: engine, rows: rows, repetitions: repeats) { print(line($0)) }
            }
            if part != .gemm {
                let modes = modes.compactMap(StepBenchmarkMode.init(rawValue:))
                print("step: random \(config), batch 1, \(tokensText) text tokens; median of \(steps) steps")
                var done: [StepBenchmarkRow] = []
                report.step = try StepBenchmark.run(
                    context: context, config: try FluxConfig.named(config), modes: modes, imageTokens: tokensImage,
                    textTokens: tokensText, steps: steps) { row in
                    done.append(row)
                    print(line(row, baseline: done))
                }
            }
            if let jsonPath {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(report).write(to: URL(fileURLWithPath: jsonPath))
            }
        }
    }

    private func line(_ row: GEMMBenchmarkRow) -> String {
        func cell(_ ms: Double) -> String { String(format: "%7.3f %5.0f %4.2f", ms, row.teraflops(ms), row.bf16 / ms) }
        return String(format: "%5d %6d %6d | %7.3f %5.0f     | ", row.m, row.n, row.k, row.bf16, row.teraflops(row.bf16))
            + cell(row.exact) + " | " + cell(row.fast)
            + String(format: " | %.3f %.3f %.3f %.3f", row.fastLowRank, row.fastQuantize, row.fastWeights, row.fastGEMM)
    }

    /// A step row, with its speed-up over the BF16 row of the same size when there is one.
    private func line(_ row: StepBenchmarkRow, baseline: [StepBenchmarkRow]) -> String {
        let gib = { (bytes: Int) in String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }
        let bf16 = baseline.first { $0.mode == .bf16 && $0.imageTokens == row.imageTokens }
        let ratio = bf16.map { String(format: ", %.2f× bf16", $0.milliseconds / row.milliseconds) } ?? ""
        return row.mode.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)
            + String(format: " %5d image tokens: %8.1f ms", row.imageTokens, row.milliseconds)
            + ratio + ", peak \(gib(row.peakBytes)), weights \(gib(row.weightBytes))"
    }
}
