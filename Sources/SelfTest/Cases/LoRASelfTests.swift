import CPUBackend
import CUDABackend
import Models
import NunchakuCore
import SVDQuant

/// LoRAs on the GPU against the CPU:
/// - `lora.w4a4`: a W4A4 layer whose low-rank branch gained LoRA ranks (`CUDASVDQW4A4Linear(sharingQuantizedWeightsOf:…)`,
///   the 4-bit weights shared) against `SVDQW4A4Linear` with the same concatenated branch. The base branch read back
///   by `lowRankTensors()` must equal the uploaded one exactly (else the case fails). Ranks 32 + 48 and 32 + 16,
///   so the quantize kernel's 64-rank slices end part-way. Tolerance as `w4a4.linear` (1e-3).
/// - `lora.flux`: the FLUX models of `flux.transformer` (dense bf16, INT4, NVFP4; 2 + 3 blocks) with a random LoRA
///   (`LoRAFile.random`: fused q/k/v, MLP, adaLN, split single-block `proj_out`, embedder) at strength 0.8 through
///   `FluxCUDATransformer.loras` against the CPU model with the same LoRA; tolerance 3e-2 as `flux.transformer`.
///   The case also fails when the LoRA leaves the GPU output unchanged (< 1 %), or when strength 0 or `reset()` does
///   not give the GPU base output bit for bit (the kernels are deterministic).
enum LoRASelfTests {
    static let cases: [SelfTestCase] = [
        w4a4(.int4(3072, 9216), m: 4608, extraRank: 48), w4a4(.int4(12288, 3072, unsigned: true), m: 333, extraRank: 16),
        w4a4(.nvfp4(3072, 3072), m: 77, extraRank: 48),
    ] + FluxRandomCheckpoint.Format.allCases.map(model)

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func w4a4(_ layer: W4A4SelfTestLayer, m: Int, extraRank: Int) -> SelfTestCase {
        let shape = "\(layer.precision) \(layer.label(rows: m)) R=\(layer.rank)+\(extraRank)"
        return SelfTestCase(kernel: "lora.w4a4", dtype: .bf16, shape: shape, tolerance: W4A4SelfTests.gemmTolerance(.bf16)) { env in
            let weights = try W4A4SelfTestData.weights(layer, &env.random)
            let base = try CUDASVDQW4A4Linear(weights: weights, activationDType: .bf16, context: env.context, stream: env.stream)
            let own = try base.lowRankTensors(stream: env.stream)
            guard own.projDown.floats() == weights.canonical.projDown.floats(), own.projUp.floats() == weights.canonical.projUp.floats() else {
                throw Failure(description: "lowRankTensors() does not give back the uploaded low-rank branch")
            }
            let (k, n, r) = (layer.inFeatures, layer.outFeatures, layer.rank + extraRank)
            let down = widened(own.projDown, rows: k, by: extraRank, values: W4A4SelfTestData.uniform([k, extraRank], -0.05...0.05, &env.random))
            let up = widened(own.projUp, rows: n, by: extraRank, values: W4A4SelfTestData.uniform([n, extraRank], -0.3...0.3, &env.random))
            let gpu = try CUDASVDQW4A4Linear(sharingQuantizedWeightsOf: base, projDown: down, projUp: up, stream: env.stream)
            var tensors = weights.canonical
            (tensors.projDown, tensors.projUp) = (down, up)
            let cpu = SVDQW4A4Linear(weights: try SVDQW4A4Weights(
                name: "selftest lora", tensors: tensors, layout: .canonical(vectorOrder: .natural), actUnsigned: layer.unsigned))
            guard gpu.rank == r, cpu.weights.rank == r else { throw Failure(description: "rank \(gpu.rank), expected \(r)") }
            let x = env.randomTensor([m, k], .bf16, in: layer.inputRange)
            let gpuX = try env.upload(x)
            let activations = try gpu.makeQuantizedActivations(rows: m, stream: env.stream)
            let output = try env.poisonedOutput([m, n], .bf16)
            let launch = {
                try gpu.quantize(gpuX, into: activations, stream: env.stream)
                try gpu.multiply(activations, into: output, stream: env.stream)
            }
            try launch()
            let result = try env.download(output)
            let rows = SelfTestRows.sample(from: m, maximum: W4A4SelfTests.comparedRows, random: &env.random)
            let reference = try cpu.forward(W4A4SelfTestData.rows(x.tensor, rows)).floats()
            var comparison = SelfTestComparison()
            try comparison.compare(result, rows: rows, width: n, with: reference)
            return SelfTestOutcome(comparison: comparison, milliseconds: try env.time(launch),
                                   note: W4A4SelfTests.rowsNote(rows.count, m))
        }
    }

    /// `[rows, R]` bf16 with `[rows, extra]` `values` appended as columns.
    static func widened(_ tensor: Tensor, rows: Int, by extra: Int, values: Tensor) -> Tensor {
        let own = tensor.floats(), added = values.floats(), r = own.count / rows
        var result = [Float](repeating: 0, count: rows * (r + extra))
        for row in 0..<rows {
            for c in 0..<r { result[row * (r + extra) + c] = own[row * r + c] }
            for c in 0..<extra { result[row * (r + extra) + r + c] = added[row * extra + c] }
        }
        return Tensor.rounding(result, shape: [rows, r + extra], to: .bf16)
    }

    static func model(_ format: FluxRandomCheckpoint.Format) -> SelfTestCase {
        let (batch, imageTokens, textTokens) = (FluxSelfTests.batch, FluxSelfTests.imageTokens, FluxSelfTests.textTokens)
        let shape = "B=\(batch) N=\(imageTokens) T=\(textTokens) blocks=2+3 D=256 \(format) rank 8"
        return SelfTestCase(kernel: "lora.flux", dtype: .bf16, shape: shape, tolerance: 3e-2) { env in
            let config = FluxSelfTests.config(format)
            let checkpoint = try FluxRandomCheckpoint(config: config, format: format, seed: env.seed)
            let inputs = try FluxRandomInputs.make(
                config: config, batch: batch, imageTokens: imageTokens, textTokens: textTokens, seed: env.seed)
            let lora = try LoRAFile.random(config: config, rank: 8, seed: env.seed)
            let gpu = try FluxCUDATransformer(random: checkpoint, context: env.context)
            let uploaded = try FluxCUDAInputs(config: config, context: env.context, inputs: inputs)
            let base = try gpu.forward(uploaded).download().floats()
            let id = try gpu.loras.add(lora, strength: 0.8)
            let result = try env.download(try gpu.forward(uploaded))
            let cpu = try FluxTransformer(random: checkpoint, computeDType: .bf16)
            try cpu.loras.add(lora, strength: 0.8)
            let reference = try cpu.forward(inputs: inputs)
            var comparison = SelfTestComparison()
            try comparison.compare(result, with: reference.floats())
            let moved = Comparison.relativeError(result.values, base)
            guard moved > 1e-2 else { throw Failure(description: "the LoRA moved the GPU output by only \(moved)") }
            let milliseconds = try env.time(warmUp: 1, repetitions: 3) { _ = try gpu.forward(uploaded) }
            try gpu.loras.setStrength(0, for: id)
            guard try gpu.forward(uploaded).download().floats() == base else { throw Failure(description: "strength 0 is not the base output") }
            try gpu.loras.setStrength(1, for: id)
            try gpu.loras.reset()
            guard try gpu.forward(uploaded).download().floats() == base else { throw Failure(description: "reset is not the base output") }
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   note: String(format: "GPU vs CPU with the LoRA at 0.8 (it moves the output by %.3f); strength 0 and reset exact", moved))
        }
    }
}
