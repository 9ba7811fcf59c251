import CUDABackend
import NunchakuCore

/// What one measured `FluxPipeline.generate` run took, stage by stage (wall clock; the GPU stages return host
/// tensors, so each stage's time includes its transfers and ends with the GPU idle).
public struct FluxPipelineRunTiming: Sendable, Codable {
    public let width: Int
    public let height: Int
    public let steps: Int
    public let t5Tokens: Int
    /// The untimed first run (one step at the same size): kernels compile and the memory pool grows.
    public let warmUpSeconds: Double?
    /// CLIP and T5 (tokenization included; it is microseconds).
    public let clipMilliseconds: Double
    public let t5Milliseconds: Double
    /// Each denoising step: transformer forward plus the scheduler step (latents go to and from the host).
    public let stepMilliseconds: [Double]
    public let medianStepMilliseconds: Double
    public let denoiseSeconds: Double
    /// VAE decode plus the conversion to 8-bit images.
    public let decodeMilliseconds: Double
    /// The whole `generate` call: encode, noise, denoise, decode.
    public let totalSeconds: Double
    /// The GPU memory pool's peak of reserved memory (else of live buffers) during the timed run, weights included;
    /// nil on the CPU. The pool is trimmed before each size's warm-up run, so a smaller size after a larger one is not
    /// charged the larger one's memory.
    public let peakBytes: Int?
    /// The peak of live buffers during the timed run (weights included); nil on the CPU.
    public let peakLiveBytes: Int?
    public let image: FluxImageSanity
}

/// A sanity check of a generated image: the decoder output is finite and not constant, and so is the 8-bit image.
public struct FluxImageSanity: Sendable, Codable {
    public let nonFinite: Int
    public let minimum: Double
    public let maximum: Double
    public let standardDeviation: Double
    /// Distinct 8-bit values over the first image's pixels.
    public let distinctPixelValues: Int

    public var passed: Bool { nonFinite == 0 && standardDeviation > 1e-4 && distinctPixelValues > 1 }

    /// Checks `output`'s decoder tensor and first image.
    public init(_ output: FluxPipelineOutput) {
        let values = output.decoded.floats()
        let finite = values.filter(\.isFinite).map(Double.init)
        let mean = finite.reduce(0, +) / Double(max(1, finite.count))
        nonFinite = values.count - finite.count
        minimum = finite.min() ?? .nan
        maximum = finite.max() ?? .nan
        standardDeviation = (finite.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, finite.count))).squareRoot()
        distinctPixelValues = Set(output.images.first?.pixels ?? []).count
    }
}

/// A full-pipeline measurement: the models built once, then one timed `generate` per image size.
public struct FluxPipelineBenchmarkReport: Sendable, Codable {
    public let device: String
    public let t5Weights: FluxRandomPipeline.T5Weights
    public let numerics: W4A4Numerics
    /// Building the four random-weight models (weights generated on the host and uploaded).
    public let loadSeconds: Double
    /// GPU memory in live buffers after loading (the four models' weights); nil on the CPU.
    public let weightBytes: Int?
    public let runs: [FluxPipelineRunTiming]
}

/// `nunchaku bench pipeline`: the real `FluxPipeline.generate` on a `FluxRandomPipeline`.
public enum FluxPipelineBenchmark {
    /// Builds `random` on `device`, then per size runs `generate` (one 1-step warm-up run first when `warmUp`) with
    /// `FluxRandomPipeline.prompt`, seed 0 and the model's default guidance and T5 length.
    /// - Parameter steps: denoising steps (nil: the model's default, 28 for dev, 4 for schnell).
    /// - Parameter log: one line per finished part (loading, warm-up, each run).
    public static func run(_ random: FluxRandomPipeline, device: FluxPipelineDevice, numerics: W4A4Numerics = .exact,
                           attention: AttentionPrecision = .bf16, fp8Accumulation: FP8Accumulation = .standard, sizes: [Int], steps: Int?,
                           warmUp: Bool = true,
                           log: (String) -> Void = { _ in }) throws -> FluxPipelineBenchmarkReport {
        let context: CUDAContext? = if case .cuda(let context) = device { context } else { nil }
        let clock = ContinuousClock()
        let loadStart = clock.now
        let pipeline = try random.makePipeline(device: device, numerics: numerics, attention: attention, fp8Accumulation: fp8Accumulation)
        try context?.synchronize()
        let loadSeconds = (clock.now - loadStart).inSeconds
        let weightBytes = try context?.memoryPool.statistics().liveBytes
        log(String(format: "loaded in %.1f s", loadSeconds)
            + (weightBytes.map { String(format: ", weights %.2f GiB on the GPU", Double($0) / Double(1 << 30)) } ?? ""))
        var runs: [FluxPipelineRunTiming] = []
        for size in sizes {
            let configuration = FluxPipeline.Configuration(prompt: FluxRandomPipeline.prompt, steps: steps, width: size, height: size)
            var warmUpSeconds: Double?
            try context?.memoryPool.trim()
            if warmUp {
                var first = configuration
                first.steps = 1
                let start = clock.now
                _ = try pipeline.generate(first)
                warmUpSeconds = (clock.now - start).inSeconds
                log(String(format: "%d²: warm-up run (1 step) %.2f s", size, warmUpSeconds ?? 0))
            }
            try context?.synchronize()
            try context?.memoryPool.resetPeak()
            let run = try timedRun(pipeline, configuration, warmUpSeconds: warmUpSeconds, context: context)
            runs.append(run)
            log(String(format: "%d²: %d steps, %.2f s", size, run.steps, run.totalSeconds))
        }
        return FluxPipelineBenchmarkReport(device: context.map { "\($0.device.name) (\($0.device.computeCapability))" } ?? "cpu",
                                           t5Weights: random.t5Weights, numerics: numerics, loadSeconds: loadSeconds,
                                           weightBytes: weightBytes, runs: runs)
    }

    /// One `generate` with the time of every progress report recorded.
    private static func timedRun(_ pipeline: FluxPipeline, _ configuration: FluxPipeline.Configuration, warmUpSeconds: Double?,
                                 context: CUDAContext?) throws -> FluxPipelineRunTiming {
        let recorder = ProgressTimes()
        let start = ContinuousClock.now
        let output = try pipeline.generate(configuration) { recorder.record($0); return .proceed }
        let totalSeconds = (ContinuousClock.now - start).inSeconds
        let memory = try context?.memoryPool.statistics()
        let encoding = recorder.intervals(.encoding)
        let steps = recorder.intervals(.denoising)
        guard encoding.count == 2, steps.count == output.settings.steps, let decode = recorder.intervals(.decoding).first else {
            throw NunchakuError.invalidArgument(
                context: "bench pipeline", reason: "the pipeline reported \(encoding.count) encoders, \(steps.count) steps and no decode; expected 2, \(output.settings.steps) and 1")
        }
        return FluxPipelineRunTiming(
            width: configuration.width, height: configuration.height, steps: steps.count, t5Tokens: output.settings.maxSequenceLength,
            warmUpSeconds: warmUpSeconds, clipMilliseconds: encoding[0] * 1000, t5Milliseconds: encoding[1] * 1000,
            stepMilliseconds: steps.map { $0 * 1000 }, medianStepMilliseconds: steps.sorted()[steps.count / 2] * 1000,
            denoiseSeconds: steps.reduce(0, +), decodeMilliseconds: decode * 1000, totalSeconds: totalSeconds,
            peakBytes: memory.map { $0.peakReservedBytes ?? $0.peakLiveBytes }, peakLiveBytes: memory?.peakLiveBytes,
            image: FluxImageSanity(output))
    }
}

/// The clock time of each progress report of one run, per stage.
private final class ProgressTimes {
    private var times: [FluxPipelineProgress.Stage: [ContinuousClock.Instant]] = [:]

    func record(_ progress: FluxPipelineProgress) {
        times[progress.stage, default: []].append(ContinuousClock.now)
    }

    /// The seconds between consecutive reports of `stage`: one per unit of work.
    func intervals(_ stage: FluxPipelineProgress.Stage) -> [Double] {
        let stamps = times[stage] ?? []
        return zip(stamps, stamps.dropFirst()).map { ($1 - $0).inSeconds }
    }
}
