import CPUBackend
import CUDABackend
import NunchakuCore

/// LayerNorm (plain and fused with adaLN modulation) and RMSNorm against `CPUOps.layerNorm`/`modulate`/`rmsNorm`.
enum NormalizationSelfTests {
    static let cases: [SelfTestCase] = SelfTestShapes.dtypes.flatMap { dtype in
        let flux = [1, SelfTestShapes.fluxTokens, SelfTestShapes.fluxWidth]
        return [
            layerNorm(dtype, flux, modulation: nil),
            layerNorm(dtype, [2, 333, 3072], modulation: nil),
            layerNorm(dtype, flux, modulation: (chunks: 6, shift: 0, scale: 1, offset: 1)),
            layerNorm(dtype, [2, 77, 3072], modulation: (chunks: 6, shift: 3, scale: 4, offset: 1)),
            layerNorm(dtype, [1, 512, 3072], modulation: (chunks: 2, shift: 0, scale: 1, offset: 0)),
            layerNorm(dtype, [3, 5, 64], modulation: (chunks: 3, shift: 2, scale: 0, offset: 1)),
            // 513 chunks of 8 over 256 threads: one thread holds a third chunk, the others two.
            layerNorm(dtype, [3, 7, 4104], modulation: nil),
            rmsNorm(dtype, [1, SelfTestShapes.fluxTokens, SelfTestShapes.fluxHeads, SelfTestShapes.fluxHeadDim]),
            rmsNorm(dtype, [2, 333, 24, 128]),
            rmsNorm(dtype, [2, 77, 4, 64]),
            rmsNorm(dtype, [7, 3072]),
        ]
    }

    typealias Modulation = (chunks: Int, shift: Int, scale: Int, offset: Float)

    /// The shape and the modulation's chunks, e.g. `[2, 77, 3072] chunks 3,4 of 6 +1`.
    static func label(_ shape: [Int], _ modulation: Modulation?) -> String {
        SelfTestShapes.text(shape) + (modulation.map { " chunks \($0.shift),\($0.scale) of \($0.chunks) +\(Int($0.offset))" } ?? "")
    }

    /// The modulation's chunks of a table on the GPU.
    static func adaLN(_ table: DeviceTensor, _ modulation: Modulation?) -> AdaLNModulation? {
        modulation.map {
            AdaLNModulation(shift: ModulationChunk(table, chunk: $0.shift), scale: ModulationChunk(table, chunk: $0.scale), scaleOffset: $0.offset)
        }
    }

    static func layerNorm(_ dtype: DType, _ shape: [Int], modulation: Modulation?) -> SelfTestCase {
        let kernel = modulation == nil ? "layernorm" : "layernorm_modulate"
        return SelfTestCase(kernel: kernel, dtype: dtype, shape: label(shape, modulation), tolerance: SelfTestShapes.outputRounding(dtype)) { env in
            let (batch, width) = (shape[0], shape[2])
            let x = env.randomTensor(shape, dtype, in: -2...2)
            let table = env.randomTensor([batch, (modulation?.chunks ?? 1) * width], dtype)
            let gpuX = try env.upload(x)
            let output = try env.poisonedOutput(shape, dtype)
            let gpuModulation = adaLN(try env.upload(table), modulation)
            let launch = { try env.context.layerNorm(gpuX, modulation: gpuModulation, into: output) }
            try launch()
            let result = try env.download(output)

            var reference = try CPUOps.layerNorm(x.float32)
            if let modulation {
                reference = try CPUOps.modulate(reference, shift: chunk(table, modulation.shift, width),
                                                scale: chunk(table, modulation.scale, width), scaleOffset: modulation.offset)
            }
            var comparison = SelfTestComparison()
            try comparison.compare(result, with: reference.floats())
            let milliseconds = try env.time(launch)
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   bytes: 2 * SelfTestShapes.bytes(x.tensor.elementCount, dtype))
        }
    }

    static func rmsNorm(_ dtype: DType, _ shape: [Int]) -> SelfTestCase {
        SelfTestCase(kernel: "rmsnorm", dtype: dtype, shape: SelfTestShapes.text(shape), tolerance: SelfTestShapes.outputRounding(dtype)) { env in
            let width = shape[shape.count - 1]
            let x = env.randomTensor(shape, dtype, in: -3...3)
            let weight = env.randomTensor([width], .f32, in: 0.5...1.5)
            let gpuX = try env.upload(x)
            let gpuWeight = try env.upload(weight)
            let output = try env.poisonedOutput(shape, dtype)
            let launch = { try env.context.rmsNorm(gpuX, weight: gpuWeight, into: output) }
            try launch()
            let result = try env.download(output)
            let reference = try CPUOps.rmsNorm(x.float32, weight: weight.tensor)
            var comparison = SelfTestComparison()
            try comparison.compare(result, with: reference.floats())
            let milliseconds = try env.time(launch)
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   bytes: 2 * SelfTestShapes.bytes(x.tensor.elementCount, dtype))
        }
    }

    /// Chunk `index` (`[B, width]`, float32) of a `[B, chunks·width]` modulation table; with `samples`, the rows of
    /// those samples in that order (`[samples.count, width]`).
    static func chunk(_ table: RandomTensor, _ index: Int, _ width: Int, samples: [Int]? = nil) -> Tensor {
        let columns = table.shape[1]
        let samples = samples ?? Array(0..<table.shape[0])
        var values: [Float] = []
        values.reserveCapacity(samples.count * width)
        for sample in samples {
            let start = sample * columns + index * width
            values += table.values[start..<(start + width)]
        }
        return Tensor(values, shape: [samples.count, width])
    }
}
