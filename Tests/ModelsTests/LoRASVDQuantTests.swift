import Foundation
import Testing
import CPUBackend
import NunchakuCore
import SVDQuant
@testable import Models

/// LoRAs on SVDQuant models (the synthetic INT4/NVFP4 checkpoints of FluxSVDQuantParityTests): W4A4 layers take the
/// ranks on their own low-rank branch, and the result is the SVDQuant forward plus the LoRA's low-rank product.
struct LoRASVDQuantTests {
    /// A W4A4 layer with a LoRA branch concatenated: its output is the base layer's plus `up·(down·x)` computed
    /// exactly (float64, from the bf16 values the layer holds). The kernel rounds the LoRA activations to bf16 and
    /// the result once more to bf16, so each element may be off by about two bf16 half-steps: the tolerance on
    /// ‖ours − (base + exact)‖ / ‖base + exact‖ is 2⁻⁷ (bf16's step is 2⁻⁷ relative). The GELU-fed unsigned `mlp_fc2`
    /// sees the unshifted input in its low-rank branch, like the SVD ranks.
    @Test(arguments: [("int4", "transformer_blocks.0.qkv_proj", false), ("int4", "transformer_blocks.0.mlp_fc2", true),
                      ("nvfp4", "single_transformer_blocks.0.out_proj", false)])
    func w4a4LayerAddsTheExactLowRankProduct(variant: String, layer: String, geluInput: Bool) throws {
        let weights = try SVDQuantTestCheckpoint.withFile(variant) {
            try SVDQuantCheckpoint(path: $0).w4a4Weights(layer, actUnsigned: geluInput && variant == "int4")
        }
        let base = SVDQW4A4Linear(weights: weights)
        let (k, n) = (base.inFeatures, base.outFeatures)
        var random = SplitMix64(seed: 11)
        func uniform(_ count: Int, _ bound: Float) -> [Float] {
            (0..<count).map { _ in Float(Double(random.next() >> 40) / Double(1 << 23) - 1) * bound }
        }
        let rank = 16
        let branch = LowRankBranch(rank: rank, inFeatures: k, outFeatures: n, down: uniform(rank * k, 1 / Float(k).squareRoot()),
                                   up: uniform(n * rank, 0.5))
        let rows = 5
        var values = uniform(rows * k, 2)
        if geluInput { values = values.map { max($0, -0.17) } }
        let x = Tensor.rounding(values, shape: [rows, k], to: .bf16)
        let adaptable = AdaptableLinear(base: base, computeDType: .bf16)
        try adaptable.adapt(branch)
        let adapted = try adaptable.forward(x).floats()
        let baseOutput = try base.forward(x).floats()

        let input = x.floats()
        let down = Tensor.rounding(branch.down, shape: [branch.down.count], to: .bf16).floats()
        let up = Tensor.rounding(branch.up, shape: [branch.up.count], to: .bf16).floats()
        var expected = baseOutput, delta = [Float](repeating: 0, count: rows * n)
        for row in 0..<rows {
            let t = (0..<rank).map { r in (0..<k).reduce(0.0) { $0 + Double(input[row * k + $1]) * Double(down[r * k + $1]) } }
            for column in 0..<n {
                let d = (0..<rank).reduce(0.0) { $0 + t[$1] * Double(up[column * rank + $1]) }
                delta[row * n + column] = Float(d)
                expected[row * n + column] += Float(d)
            }
        }
        let error = Comparison.relativeError(adapted, expected)
        let change = Comparison.relativeError(adapted, baseOutput)
        print("\(variant) \(layer) + rank-16 LoRA: relative error \(error) against base + exact low-rank product (which moves it by \(change))")
        #expect(error <= 1.0 / 128, "relative error \(error)")
        #expect(change > 0.05, "the branch should change the output noticeably")
        try adaptable.adapt(nil)
        #expect(try adaptable.forward(x).floats() == baseOutput, "back to the base layer bit for bit")
    }

    /// On the whole kernel-exact model: the LoRA moves the output, strength 0 and `reset` give the base output bit
    /// for bit, and the result stays as close to the dequantized model with the same LoRA (f32) as the base models
    /// are to each other (3e-2, FluxSVDQuantParityTests).
    @Test(arguments: ["int4", "nvfp4"])
    func kernelExactModelWithLoRA(variant: String) throws {
        let fixture = try SVDQuantFluxFixture.named(variant)
        let (model, reference) = try SVDQuantTestCheckpoint.withFile(variant) { path in
            let files = try FluxModelFiles(path: path)
            return (try FluxTransformer(files: files, computeDType: .bf16),
                    try FluxTransformer(files: files, computeDType: .f32, quantizedLayers: .dequantized))
        }
        let lora = try LoRAFile.random(config: fixture.config, rank: 8, seed: 5)
        let base = try fixture.run(model).floats()
        let id = try model.loras.add(lora, strength: 0.8)
        try reference.loras.add(lora, strength: 0.8)
        #expect(model.loras.applied[0].layers.contains("transformer_blocks.0.qkv_proj"))
        #expect(model.loras.applied[0].layers.contains("single_transformer_blocks.0.mlp_fc2"))
        let adapted = try fixture.run(model).floats()
        let expected = try fixture.run(reference).floats()
        let error = Comparison.relativeError(adapted, expected), moved = Comparison.relativeError(expected, base)
        print("flux-svdq-\(variant) + LoRA kernel-exact bf16: relative error \(error) against dequantized f32 + LoRA (the LoRA moves it by \(moved))")
        #expect(error <= 3e-2)
        #expect(moved > 0.1)
        try model.loras.setStrength(0, for: id)
        #expect(try fixture.run(model).floats() == base, "strength 0 must give the base output bit for bit")
        try model.loras.setStrength(1, for: id)
        try model.loras.reset()
        #expect(try fixture.run(model).floats() == base, "reset must give the base output bit for bit")
    }
}

/// The synthetic SVDQuant checkpoints as merged files in a temporary folder, removed afterwards.
enum SVDQuantTestCheckpoint {
    static func withFile<R>(_ variant: String, _ body: (String) throws -> R) throws -> R {
        let fixture = try SVDQuantFluxFixture.named(variant)
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path + "/svdq-\(variant)-lora-test.safetensors"
        try fixture.writeMerged(fixture.tensors, to: path)
        return try body(path)
    }
}
