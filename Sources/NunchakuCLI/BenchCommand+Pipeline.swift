import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Nunchaku

extension W4A4Numerics: ExpressibleByArgument {}
extension FP8Accumulation: ExpressibleByArgument {
    /// The `--fp8-accumulation` options' help, after "where".
    static let optionHelp = "the FP8 GEMMs use cuBLASLt's fast accumulation: fast (everywhere, the default), mixed (up to depth \(fastDepthLimit), promoted above: about 3 ms slower per 1024² step on an H100, slightly smaller error) or promoted (nowhere); docs/hopper.md"
}
extension FluxRandomPipeline.T5Weights: ExpressibleByArgument {}

/// `nunchaku bench pipeline`: FluxPipeline.generate end to end on the GPU with FLUX.1-sized random models.
extension BenchCommand {
    func runPipeline(context: CUDAContext) throws -> FluxPipelineBenchmarkReport {
        let transformer = try FluxConfig.named(config)
        let random = FluxRandomPipeline.fullSize(transformer: transformer, transformerFormat: .int4, t5Weights: t5)
        let attention = self.attention.first ?? .bf16
        print("pipeline: random \(config) INT4 (\(numerics.rawValue) numerics\(numerics == .fast ? ", FP8 accumulation \(fp8Accumulation.rawValue)" : ""), \(attention) attention), CLIP-L, T5-XXL \(t5.rawValue), FLUX VAE; "
              + "sizes \(size.map { "\($0)²" }.joined(separator: ", "))")
        let report = try FluxPipelineBenchmark.run(random, device: .cuda(context), numerics: numerics, attention: attention,
                                                   fp8Accumulation: fp8Accumulation, sizes: size,
                                                   steps: steps) {
            print("  \($0)")
        }
        for run in report.runs { print(describe(run)) }
        return report
    }

    /// The error for a report whose images failed the sanity check (thrown after the JSON is written).
    func checkImages(_ report: FluxPipelineBenchmarkReport) throws {
        let failed = report.runs.filter { !$0.image.passed }.map { "\($0.width)×\($0.height)" }
        guard failed.isEmpty else {
            throw NunchakuError.invalidArgument(context: "bench pipeline", reason: "the image at \(failed.joined(separator: ", ")) failed the sanity check (non-finite or constant values; see above)")
        }
    }

    private func describe(_ run: FluxPipelineRunTiming) -> String {
        let image = run.image
        return """
            \(run.width)×\(run.height), \(run.steps) steps, \(run.t5Tokens) T5 tokens:
              encode: CLIP \(String(format: "%.1f", run.clipMilliseconds)) ms, T5 \(String(format: "%.1f", run.t5Milliseconds)) ms
              denoise: step median \(String(format: "%.1f", run.medianStepMilliseconds)) ms (min \(String(format: "%.1f", run.stepMilliseconds.min() ?? 0)), max \(String(format: "%.1f", run.stepMilliseconds.max() ?? 0))), all steps \(String(format: "%.2f", run.denoiseSeconds)) s
              decode: VAE \(String(format: "%.1f", run.decodeMilliseconds)) ms
              total \(String(format: "%.2f", run.totalSeconds)) s; peak GPU memory (pool) reserved \(run.peakBytes.map(gib) ?? "n/a"), live \(run.peakLiveBytes.map(gib) ?? "n/a")
              image check: \(image.passed ? "ok" : "FAILED"): non-finite \(image.nonFinite), range [\(String(format: "%.3f", image.minimum)), \(String(format: "%.3f", image.maximum))], std \(String(format: "%.3f", image.standardDeviation)), \(image.distinctPixelValues) distinct 8-bit values
            """
    }
}
