import CUDABackend
import Models
import NunchakuCore

/// `flux.prefetch`: the fast W4A4 weight prefetch (`CUDAW4A4FastEngine.prefetchesWeights`: each layer's expansion
/// queued on a side stream while its predecessor runs) against in-line expansion, on the small INT4 model of
/// `flux.transformer` (sm_90+). The expansion is deterministic, so every output must match bit for bit
/// (tolerance 0): eager forwards with the prefetch (the first learns the layer order, the later ones prefetch),
/// a CUDA graph captured with it (replayed into a poisoned output), and an eager forward after a random LoRA is
/// added. Fails as well when no expansion was prefetched. The time is one eager forward with the prefetch; the note
/// gives the one without.
enum FluxPrefetchSelfTests {
    static let cases = [prefetch()]

    static func prefetch() -> SelfTestCase {
        SelfTestCase(kernel: "flux.prefetch", dtype: .bf16, shape: FluxSelfTests.fastModelShape, tolerance: 0) { env in
            let (model, inputs, config) = try FluxSelfTests.fastModel(env)
            guard let engine = model.fastEngine else {
                throw NunchakuError.invalidArgument(context: "flux.prefetch", reason: "the fast model has no fast engine")
            }
            func forward(prefetching: Bool) throws -> [Float] {
                engine.prefetchesWeights = prefetching
                return try env.download(try model.forward(inputs)).values
            }
            let inLine = try forward(prefetching: false)
            var comparison = SelfTestComparison()
            engine.prefetchesWeights = true
            for _ in 0..<3 { try comparison.compare(try env.download(try model.forward(inputs)), with: inLine) }
            let runner = try FluxCUDAGraphRunner(transformer: model, inputs: inputs)
            try env.poison(runner.output)
            try comparison.compare(try env.download(try runner.forward(inputs)), with: inLine)
            let milliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try model.forward(inputs) }
            guard engine.prefetchedExpansions > 0 else {
                throw NunchakuError.invalidArgument(context: "flux.prefetch", reason: "no weight expansion was prefetched")
            }
            engine.prefetchesWeights = false
            let inLineMilliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try model.forward(inputs) }
            try model.loras.add(try LoRAFile.random(config: config, seed: env.seed), strength: 0.8)
            let adaptedInLine = try forward(prefetching: false)
            _ = try forward(prefetching: true)
            try comparison.compare(try env.download(try model.forward(inputs)), with: adaptedInLine)
            guard adaptedInLine != inLine else {
                throw NunchakuError.invalidArgument(context: "flux.prefetch", reason: "the LoRA did not change the output")
            }
            let note = String(format: "prefetched vs in-line expansion (%.2f ms in line), eager, graph, LoRA; %d prefetches",
                              inLineMilliseconds, engine.prefetchedExpansions)
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds, note: note)
        }
    }
}
