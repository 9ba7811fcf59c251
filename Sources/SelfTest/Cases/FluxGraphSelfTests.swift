import CUDABackend
import Models
import NunchakuCore

/// `flux.graph`: the FLUX transformer step captured into a CUDA graph (`FluxCUDAGraphRunner`) against the eager
/// forward of the same model, which must match bit for bit (same kernels, same order: tolerance 0). The small INT4
/// model of `flux.transformer`, exact and (sm_90+) fast numerics. Three replays, each into a poisoned output: two
/// sets of fresh random inputs (the graph must pick up new values copied into its input buffers), then the first
/// set again after a random LoRA is added (the runner must notice and capture again). The time is one replay; the
/// note gives the eager step's.
enum FluxGraphSelfTests {
    static let cases: [SelfTestCase] = W4A4Numerics.allCases.map(graph)

    static func graph(_ numerics: W4A4Numerics) -> SelfTestCase {
        let (batch, imageTokens, textTokens) = (FluxSelfTests.batch, FluxSelfTests.imageTokens, FluxSelfTests.textTokens)
        let shape = "B=\(batch) N=\(imageTokens) T=\(textTokens) blocks=2+3 D=256 int4 \(numerics)"
        return SelfTestCase(kernel: "flux.graph", dtype: .bf16, shape: shape, tolerance: 0) { env in
            if numerics == .fast, env.context.device.computeCapability < CUDAW4A4FastEngine.minimumComputeCapability {
                throw SelfTestSkip("fast numerics need \(CUDAW4A4FastEngine.minimumComputeCapability), this GPU is \(env.context.device.computeCapability)")
            }
            let config = FluxSelfTests.config(.int4)
            let checkpoint = try FluxRandomCheckpoint(config: config, format: .int4, seed: env.seed)
            let model = try FluxCUDATransformer(random: checkpoint, context: env.context, numerics: numerics)
            let inputs = try [env.seed, env.seed &+ 1].map { seed in
                try FluxCUDAInputs(config: config, context: env.context, inputs: try FluxRandomInputs.make(
                    config: config, batch: batch, imageTokens: imageTokens, textTokens: textTokens, seed: seed))
            }
            let runner = try FluxCUDAGraphRunner(transformer: model, inputs: inputs[0])
            var comparison = SelfTestComparison()
            var eagerOutputs: [[Float]] = []
            func check(_ uploaded: FluxCUDAInputs) throws {
                let eager = try env.download(try model.forward(uploaded))
                try env.poison(runner.output)
                let replayed = try env.download(try runner.forward(uploaded))
                try comparison.compare(replayed, with: eager.values)
                eagerOutputs.append(eager.values)
            }
            try check(inputs[0])
            try check(inputs[1])
            guard eagerOutputs[0] != eagerOutputs[1] else {
                throw NunchakuError.invalidArgument(context: "flux.graph", reason: "the two input sets gave the same output")
            }
            let stepMilliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try model.forward(inputs[0]) }
            let replayMilliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try runner.forward(inputs[0]) }
            try model.loras.add(try LoRAFile.random(config: config, seed: env.seed), strength: 0.8)
            try check(inputs[0])
            guard runner.captureCount == 2 else {
                throw NunchakuError.invalidArgument(
                    context: "flux.graph", reason: "adding a LoRA left \(runner.captureCount) captures, expected a second one")
            }
            guard eagerOutputs[2] != eagerOutputs[0] else {
                throw NunchakuError.invalidArgument(context: "flux.graph", reason: "the LoRA did not change the output")
            }
            let note = String(format: "graph replay vs eager step (%.2f ms eager), 2 inputs + LoRA re-capture", stepMilliseconds)
            return SelfTestOutcome(comparison: comparison, milliseconds: replayMilliseconds, note: note)
        }
    }
}
