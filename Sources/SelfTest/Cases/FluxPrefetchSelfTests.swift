import CUDABackend
import Models
import NunchakuCore

/// `flux.prefetch`: the fast W4A4 weight expansions queued ahead of their layers on low-priority side streams, against
/// every expansion in line, on the small INT4 model of `flux.transformer` (sm_90+): the out-projections' expansions
/// beside the attention kernel (`CUDAW4A4FastEngine.expandsBesideAttention`, the default), then the learned-order
/// prefetch (`prefetchesWeights`: each layer's expansion queued while its predecessor runs). The expansion is
/// deterministic, so every output must match bit for bit (tolerance 0): for each way, eager forwards (the first
/// prefetch forward learns the layer order, the later ones prefetch) and a CUDA graph captured with it (replayed into
/// a poisoned output); then an eager forward after a random LoRA is added. Fails as well when a way prefetched
/// nothing. The time is one eager forward with the learned-order prefetch; the note gives the other two.
enum FluxPrefetchSelfTests {
    static let cases = [prefetch()]

    static func prefetch() -> SelfTestCase {
        SelfTestCase(kernel: "flux.prefetch", dtype: .bf16, shape: FluxSelfTests.fastModelShape, tolerance: 0) { env in
            let (model, inputs, config) = try FluxSelfTests.fastModel(env)
            guard let engine = model.fastEngine else {
                throw NunchakuError.invalidArgument(context: "flux.prefetch", reason: "the fast model has no fast engine")
            }
            defer { (engine.prefetchesWeights, engine.expandsBesideAttention) = (false, true) }
            func use(prefetching: Bool, besideAttention: Bool) {
                (engine.prefetchesWeights, engine.expandsBesideAttention) = (prefetching, besideAttention)
            }
            func forward() throws -> [Float] { try env.download(try model.forward(inputs)).values }
            var comparison = SelfTestComparison()
            /// Eager forwards and a graph replay against `reference`; fails unless they prefetched.
            func compareWays(with reference: [Float], _ way: String) throws {
                let before = engine.prefetchedExpansions
                for _ in 0..<3 { try comparison.compare(try env.download(try model.forward(inputs)), with: reference) }
                let runner = try FluxCUDAGraphRunner(transformer: model, inputs: inputs)
                try env.poison(runner.output)
                try comparison.compare(try env.download(try runner.forward(inputs)), with: reference)
                guard engine.prefetchedExpansions > before else {
                    throw NunchakuError.invalidArgument(context: "flux.prefetch", reason: "no weight expansion was prefetched \(way)")
                }
            }
            use(prefetching: false, besideAttention: false)
            let inLine = try forward()
            let inLineMilliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try model.forward(inputs) }
            use(prefetching: false, besideAttention: true)
            try compareWays(with: inLine, "beside the attention")
            let besideMilliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try model.forward(inputs) }
            use(prefetching: true, besideAttention: true)
            try compareWays(with: inLine, "in the learned order")
            let milliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try model.forward(inputs) }
            try model.loras.add(try LoRAFile.random(config: config, seed: env.seed), strength: 0.8)
            use(prefetching: false, besideAttention: false)
            let adaptedInLine = try forward()
            use(prefetching: true, besideAttention: true)
            _ = try forward()
            try comparison.compare(try env.download(try model.forward(inputs)), with: adaptedInLine)
            guard adaptedInLine != inLine else {
                throw NunchakuError.invalidArgument(context: "flux.prefetch", reason: "the LoRA did not change the output")
            }
            let note = String(format: "learned-order prefetch and expansions beside the attention vs in line (%.2f ms in line, %.2f ms beside the attention), eager, graph, LoRA; %d prefetches",
                              inLineMilliseconds, besideMilliseconds, engine.prefetchedExpansions)
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds, note: note)
        }
    }
}
