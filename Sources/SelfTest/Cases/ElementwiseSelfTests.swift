import CPUBackend
import CUDABackend
import NunchakuCore

/// GELU-tanh, SiLU and the gated residual add against `CPUOps.geluTanh`/`silu`/`gatedAdd`.
enum ElementwiseSelfTests {
    static let cases: [SelfTestCase] = SelfTestShapes.dtypes.flatMap { dtype in
        [
            activation(.geluTanh, dtype, [1, SelfTestShapes.fluxTokens, 4 * SelfTestShapes.fluxWidth]),
            activation(.geluTanh, dtype, [3, 1001]),
            activation(.silu, dtype, [1, SelfTestShapes.fluxWidth]),
            activation(.silu, dtype, [2, 333, 3072]),
            activation(.silu, dtype, [5, 7]),
            gatedAdd(dtype, [1, SelfTestShapes.fluxTokens, SelfTestShapes.fluxWidth], chunks: 6, gate: 2),
            gatedAdd(dtype, [2, 333, 3072], chunks: 3, gate: 2),
            gatedAdd(dtype, [3, 7, 64], chunks: 1, gate: 0),
        ]
    }

    static func activation(_ activation: CUDAActivation, _ dtype: DType, _ shape: [Int]) -> SelfTestCase {
        SelfTestCase(kernel: activation.rawValue, dtype: dtype, shape: SelfTestShapes.text(shape),
                     tolerance: SelfTestShapes.outputRounding(dtype)) { env in
            let x = env.randomTensor(shape, dtype, in: -6...6)
            let gpuX = try env.upload(x)
            let output = try env.poisonedOutput(shape, dtype)
            let launch = { try env.context.apply(activation, to: gpuX, into: output) }
            try launch()
            let result = try env.download(output)
            let reference = activation == .geluTanh ? try CPUOps.geluTanh(x.float32) : try CPUOps.silu(x.float32)
            var comparison = SelfTestComparison()
            try comparison.compare(result, with: reference.floats())
            let milliseconds = try env.time(launch)
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   bytes: 2 * SelfTestShapes.bytes(x.tensor.elementCount, dtype))
        }
    }

    static func gatedAdd(_ dtype: DType, _ shape: [Int], chunks: Int, gate: Int) -> SelfTestCase {
        let label = SelfTestShapes.text(shape) + " gate chunk \(gate) of \(chunks)"
        return SelfTestCase(kernel: "gated_add", dtype: dtype, shape: label, tolerance: SelfTestShapes.outputRounding(dtype)) { env in
            let (batch, width) = (shape[0], shape[2])
            let residual = env.randomTensor(shape, dtype, in: -4...4)
            let update = env.randomTensor(shape, dtype, in: -4...4)
            let table = env.randomTensor([batch, chunks * width], dtype)
            let gpuResidual = try env.upload(residual)
            let gpuUpdate = try env.upload(update)
            let gpuTable = try env.upload(table)
            let output = try env.poisonedOutput(shape, dtype)
            let launch = {
                try env.context.gatedAdd(residual: gpuResidual, gate: ModulationChunk(gpuTable, chunk: gate), update: gpuUpdate, into: output)
            }
            try launch()
            let result = try env.download(output)
            let reference = try CPUOps.gatedAdd(residual.float32, gate: NormalizationSelfTests.chunk(table, gate, width), update.float32)
            var comparison = SelfTestComparison()
            try comparison.compare(result, with: reference.floats())
            let milliseconds = try env.time(launch)
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   bytes: 3 * SelfTestShapes.bytes(residual.tensor.elementCount, dtype))
        }
    }
}
