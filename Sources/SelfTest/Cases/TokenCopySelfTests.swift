import CPUBackend
import CUDABackend
import NunchakuCore

/// Token concat and split against `CPUOps.concatTokens`/`splitTokens`: copies, so the results must match exactly
/// (tolerance 0).
enum TokenCopySelfTests {
    static let cases: [SelfTestCase] = SelfTestShapes.dtypes.flatMap { dtype in
        [
            concat(dtype, batch: 1, tokens: [SelfTestShapes.fluxTextTokens, SelfTestShapes.fluxTokens - SelfTestShapes.fluxTextTokens],
                   trailing: [SelfTestShapes.fluxWidth]),
            concat(dtype, batch: 2, tokens: [77, 333, 1], trailing: [24, 128]),
            concat(dtype, batch: 2, tokens: [5, 7], trailing: [3]),
            split(dtype, batch: 1, tokens: [SelfTestShapes.fluxTextTokens, SelfTestShapes.fluxTokens - SelfTestShapes.fluxTextTokens],
                  trailing: [SelfTestShapes.fluxWidth]),
            split(dtype, batch: 3, tokens: [4, 0, 9], trailing: [5]),
        ]
    }

    static func concat(_ dtype: DType, batch: Int, tokens: [Int], trailing: [Int]) -> SelfTestCase {
        let label = tokens.map { SelfTestShapes.text([batch, $0] + trailing) }.joined(separator: " + ")
        return SelfTestCase(kernel: "concat_tokens", dtype: dtype, shape: label, tolerance: 0) { env in
            let parts = tokens.map { env.randomTensor([batch, $0] + trailing, dtype) }
            let gpuParts = try parts.map { try env.upload($0) }
            let shape = [batch, tokens.reduce(0, +)] + trailing
            let output = try env.poisonedOutput(shape, dtype)
            let launch = { try env.context.concatTokens(gpuParts, into: output) }
            try launch()
            let result = try env.download(output)
            let reference = try CPUOps.concatTokens(parts.map(\.tensor))
            var comparison = SelfTestComparison()
            try comparison.compare(result, with: reference.floats())
            let milliseconds = try env.time(launch)
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   bytes: 2 * SelfTestShapes.bytes(shape.reduce(1, *), dtype))
        }
    }

    static func split(_ dtype: DType, batch: Int, tokens: [Int], trailing: [Int]) -> SelfTestCase {
        let shape = [batch, tokens.reduce(0, +)] + trailing
        let label = SelfTestShapes.text(shape) + " into " + tokens.map(String.init).joined(separator: "+")
        return SelfTestCase(kernel: "split_tokens", dtype: dtype, shape: label, tolerance: 0) { env in
            let x = env.randomTensor(shape, dtype)
            let gpuX = try env.upload(x)
            let outputs = try tokens.map { try env.poisonedOutput([batch, $0] + trailing, dtype) }
            let launch = { try env.context.splitTokens(gpuX, into: outputs) }
            try launch()
            let references = try CPUOps.splitTokens(x.tensor, sizes: tokens)
            var comparison = SelfTestComparison()
            for (output, reference) in zip(outputs, references) {
                try comparison.compare(try env.download(output), with: reference.floats())
            }
            let milliseconds = try env.time(launch)
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   bytes: 2 * SelfTestShapes.bytes(shape.reduce(1, *), dtype))
        }
    }
}
