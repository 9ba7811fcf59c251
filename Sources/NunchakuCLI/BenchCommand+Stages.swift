import ArgumentParser
import Nunchaku

/// `nunchaku bench stages`: the GPU VAE decoder and text encoders at full size with random weights.
extension BenchCommand {
    func runStages(context: CUDAContext) throws -> [StageBenchmark.Timing] {
        let selected = (stages.isEmpty ? StageBenchmark.Stage.allCases.map(\.rawValue) : stages).compactMap(StageBenchmark.Stage.init(rawValue:))
        var timings: [StageBenchmark.Timing] = []
        for stage in selected {
            let timing = try StageBenchmark.run(stage, context: context, imageSize: imageSize, t5Tokens: t5Tokens,
                                                repetitions: repeats ?? 3)
            print("\(stage.rawValue): \(timing.shape): \(String(format: "%.1f", timing.milliseconds)) ms per call; "
                  + "load \(String(format: "%.1f", timing.loadSeconds)) s; weights \(gib(timing.weightBytes)); "
                  + "peak live \(gib(timing.peakLiveBytes)), reserved \(timing.peakReservedBytes.map(gib) ?? "n/a"); "
                  + "output rms \(String(format: "%.3f", timing.outputRMS)), non-finite \(timing.nonFinite)")
            timings.append(timing)
            try context.memoryPool.trim()
        }
        return timings
    }
}

/// `bytes` in GiB with two decimals.
func gib(_ bytes: Int) -> String { String(format: "%.2f GiB", Double(bytes) / Double(1 << 30)) }
