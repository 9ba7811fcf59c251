import CUDABackend
import Models
import NunchakuCore

/// `flux.attention_codes`: the small fast INT4 model (`FluxSelfTests`' config) with fp8 attention, its
/// out-projections reading the codes the attention wrote for them (`CUDAW4A4FastEngine.quantizesInAttention`, sm_90a)
/// against the CPU's dense-equivalent model (bf16 attention), under the tolerance of `attention.fp8.flux`. A CUDA
/// graph replay (into a poisoned output) must equal the eager forward bit for bit. The note gives the difference
/// from the same model with the out-projections quantizing the 16-bit attention output themselves, and that
/// model's own error. A batch of one runs the double blocks' path too (text and image rows of one codes output, two
/// tables); a batch of two only the single blocks' (the double blocks keep 16-bit rows).
enum FluxAttentionCodesSelfTests {
    static let cases = [attentionCodes(batch: 1), attentionCodes(batch: 2)]

    static func attentionCodes(batch: Int) -> SelfTestCase {
        let (imageTokens, textTokens) = (FluxSelfTests.imageTokens, FluxSelfTests.textTokens)
        let shape = "B=\(batch) N=\(imageTokens) T=\(textTokens) blocks=2+3 D=256 int4 fast"
        return SelfTestCase(kernel: "flux.attention_codes", dtype: .bf16, shape: shape, tolerance: 5e-2) { env in
            try env.requireFP8Attention()
            let config = FluxSelfTests.config(.int4)
            let checkpoint = try FluxRandomCheckpoint(config: config, format: .int4, seed: env.seed)
            let model = try FluxCUDATransformer(random: checkpoint, context: env.context, numerics: .fast).withAttention(.fp8)
            guard let engine = model.fastEngine else { throw SelfTestSkip("the model has no fast W4A4 layers") }
            let hostInputs = try FluxRandomInputs.make(config: config, batch: batch, imageTokens: imageTokens, textTokens: textTokens, seed: env.seed)
            let inputs = try FluxCUDAInputs(config: config, context: env.context, inputs: hostInputs)
            let reference = try FluxTransformer(denseEquivalentOf: checkpoint, computeDType: .bf16).forward(inputs: hostInputs).floats()
            engine.quantizesInAttention = false
            let unfused = try env.download(try model.forward(inputs)).values
            engine.quantizesInAttention = true
            let fused = try env.download(try model.forward(inputs))
            var comparison = SelfTestComparison()
            try comparison.compare(fused, with: reference)
            let runner = try FluxCUDAGraphRunner(transformer: model, inputs: inputs)
            try env.poison(runner.output)
            let replayed = try env.download(try runner.forward(inputs)).values
            if let index = replayed.indices.first(where: { replayed[$0].bitPattern != fused.values[$0].bitPattern }) {
                throw AttentionFP8SelfTests.OperandMismatch(description: "graph replay differs from the eager forward at element \(index)")
            }
            var difference = SelfTestComparison(), unfusedError = SelfTestComparison()
            try difference.compare(fused, with: unfused)
            try unfusedError.compare(SelfTestOutput(Tensor(unfused, shape: [unfused.count])), with: reference)
            let milliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try model.forward(inputs) }
            return SelfTestOutcome(
                comparison: comparison, milliseconds: milliseconds,
                note: "vs the out-projections' own passes " + SelfTestTable.scientific(difference.relativeError) + " (their error "
                    + SelfTestTable.scientific(unfusedError.relativeError) + "); graph replay bit-identical")
        }
    }
}
