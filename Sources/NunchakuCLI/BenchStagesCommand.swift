import ArgumentParser
import Nunchaku

/// `nunchaku bench-stages`: the GPU VAE decoder and text encoders at full size with random weights.
struct BenchStagesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-stages",
        abstract: "Time the GPU VAE decoder and text encoders at full size with random weights (no files).",
        discussion: """
        Stages: vae (FLUX.1 VAE decoder, --image-size² output), clip (CLIP-L, 77 tokens), t5 (T5-XXL bf16, \
        --t5-tokens tokens), t5-awq (T5-XXL with 4-bit TinyChat block linears). Each stage is loaded, run once to \
        warm up, then timed --repetitions times (wall clock, host tensors in and out; median). Memory: the pool's \
        peak live and reserved bytes during the timed calls, weights included.
        """)

    @Option(name: .customLong("stage"), help: "vae, clip, t5 or t5-awq; repeat for several (default: all).")
    var stages: [String] = []

    @Option(help: "Side of the decoded image in pixels (latents are a eighth of it).")
    var imageSize = 1024

    @Option(help: "T5 sequence length.")
    var t5Tokens = 512

    @Option(help: "Timed runs per stage.")
    var repetitions = 3

    @Option(help: "GPU index.")
    var device = 0

    func run() throws {
        try reportingFailure(of: "bench-stages") {
            let selected = try (stages.isEmpty ? StageBenchmark.Stage.allCases.map(\.rawValue) : stages).map { name in
                guard let stage = StageBenchmark.Stage(rawValue: name) else {
                    throw ValidationError("unknown stage \(name); use vae, clip, t5 or t5-awq")
                }
                return stage
            }
            let context = try CUDAContext(deviceIndex: device)
            print("nunchaku bench-stages on \(context.device.name)")
            for stage in selected {
                let timing = try StageBenchmark.run(stage, context: context, imageSize: imageSize, t5Tokens: t5Tokens,
                                                    repetitions: repetitions)
                func gib(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }
                print("\(stage.rawValue): \(timing.shape): \(String(format: "%.1f", timing.milliseconds)) ms per call; "
                      + "load \(String(format: "%.1f", timing.loadSeconds)) s; weights \(gib(timing.weightBytes)); "
                      + "peak live \(gib(timing.peakLiveBytes)), reserved \(timing.peakReservedBytes.map(gib) ?? "n/a"); "
                      + "output rms \(String(format: "%.3f", timing.outputRMS)), non-finite \(timing.nonFinite)")
                try context.memoryPool.trim()
            }
        }
    }
}
