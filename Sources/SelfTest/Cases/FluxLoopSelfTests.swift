import CUDABackend
import Models
import NunchakuCore
import Pipelines

/// `flux.loop`: the pipeline's CUDA sampling loop (`FluxCUDATransformer.denoisingLoop`), which uploads the shared
/// arguments and builds the RoPE tables at its first step only, against a full `forward(inputs:)` at each step (every
/// argument uploaded and rebuilt). Same kernels, same order: tolerance 0. The small INT4 model of
/// `flux.transformer`; three steps with fresh random latents and timesteps each, so a stale upload would show.
enum FluxLoopSelfTests {
    static let cases = [loop()]

    static func loop() -> SelfTestCase {
        let (batch, imageTokens, textTokens) = (FluxSelfTests.batch, FluxSelfTests.imageTokens, FluxSelfTests.textTokens)
        let shape = "B=\(batch) N=\(imageTokens) T=\(textTokens) blocks=2+3 D=256 int4, 3 steps"
        return SelfTestCase(kernel: "flux.loop", dtype: .bf16, shape: shape, tolerance: 0) { env in
            let config = FluxSelfTests.config(.int4)
            let checkpoint = try FluxRandomCheckpoint(config: config, format: .int4, seed: env.seed)
            let model = try FluxCUDATransformer(random: checkpoint, context: env.context)
            let steps = try (0..<3).map { step in
                try FluxRandomInputs.make(config: config, batch: batch, imageTokens: imageTokens, textTokens: textTokens,
                                          seed: env.seed &+ UInt64(step))
            }
            let stepNames: Set = ["hidden_states", "timestep"]
            let fixed = steps[0].filter { !stepNames.contains($0.key) }
            var loop = model.denoisingLoop(fixedInputs: fixed)
            var comparison = SelfTestComparison()
            var outputs: [[Float]] = []
            for arguments in steps {
                let stepInputs = fixed.merging(arguments.filter { stepNames.contains($0.key) }) { _, new in new }
                let looped = try loop.velocity(hiddenStates: stepInputs["hidden_states"]!, timestep: stepInputs["timestep"]!)
                let full = try SelfTestOutput(try model.forward(inputs: stepInputs))
                try comparison.compare(try SelfTestOutput(looped), with: full.values)
                outputs.append(full.values)
            }
            guard Set(outputs.map { $0.map(\.bitPattern) }).count == outputs.count else {
                throw NunchakuError.invalidArgument(context: "flux.loop", reason: "two steps gave the same output")
            }
            let stepInputs = fixed.merging(steps[1].filter { stepNames.contains($0.key) }) { _, new in new }
            let fullMilliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try model.forward(inputs: stepInputs) }
            let loopMilliseconds = try env.time(warmUp: 1, repetitions: 3) {
                _ = try loop.velocity(hiddenStates: stepInputs["hidden_states"]!, timestep: stepInputs["timestep"]!)
            }
            let note = String(format: "loop step vs full forward(inputs:) (%.2f ms with every upload)", fullMilliseconds)
            return SelfTestOutcome(comparison: comparison, milliseconds: loopMilliseconds, note: note)
        }
    }
}
