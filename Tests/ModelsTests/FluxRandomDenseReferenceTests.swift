import CPUBackend
import NunchakuCore
import SVDQuant
import Testing
@testable import Models

/// The dense-equivalent CPU model of a random SVDQuant checkpoint (the reference `run-transformer --compare-dense`
/// measures both W4A4 numerics against).
struct FluxRandomDenseReferenceTests {
    @Test func quantizedLayersBecomeDenseAndTheModelStaysCloseToTheKernelExactOne() throws {
        let config = FluxCUDARandomCheckpointTests.micro
        let checkpoint = try FluxRandomCheckpoint(config: config, format: .int4, seed: 3)
        let reference = FluxRandomDenseReference(checkpoint: checkpoint)
        let reader = WeightReader(checkpoint.tensors, source: "test")
        for spec in [try FluxCUDARandomCheckpointTests.spec("transformer_blocks.0.qkv_proj", 128, 384),
                     try FluxCUDARandomCheckpointTests.spec("transformer_blocks.0.norm1.linear", 128, 768, .awqW4A16)] {
            #expect(try reference.makeLinear(spec, computeDType: .f32, weights: reader) is DenseLinear, "\(spec.name)")
        }
        let inputs = try FluxRandomInputs.make(config: config, batch: 1, imageTokens: 16, textTokens: 8, seed: 4)
        let dense = try FluxTransformer(denseEquivalentOf: checkpoint, computeDType: .bf16).forward(inputs: inputs)
        let exact = try FluxTransformer(random: checkpoint, computeDType: .bf16).forward(inputs: inputs)
        let error = try Comparison.relativeError(exact, dense)
        // 4-bit activations cost a few percent; a wrong layer (dense weights of another layer, a missing bias)
        // would cost far more, and identical outputs would mean no quantization happened.
        #expect(error > 1e-3 && error < 0.25, "kernel-exact vs dense-equivalent \(error)")
    }
}
