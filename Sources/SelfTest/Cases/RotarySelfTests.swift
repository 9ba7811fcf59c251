import CPUBackend
import CUDABackend
import NunchakuCore

/// FLUX RoPE against `CPUOps.applyRotary` with the table of `RotaryTable.flux` (float64 angles, uploaded as float32).
enum RotarySelfTests {
    static let cases: [SelfTestCase] = SelfTestShapes.dtypes.flatMap { dtype in
        [
            rotary(dtype, [1, SelfTestShapes.fluxTokens, SelfTestShapes.fluxHeads, SelfTestShapes.fluxHeadDim],
                   axes: [16, 56, 56], positions: .flux(text: SelfTestShapes.fluxTextTokens, side: 64)),
            rotary(dtype, [2, 333, 24, 128], axes: [16, 56, 56], positions: .random(maximum: 128)),
            rotary(dtype, [1, 77, 4, 64], axes: [8, 28, 28], positions: .random(maximum: 64)),
        ]
    }

    enum Positions {
        /// FLUX's ids: `text` tokens at (0, 0, 0), then a `side`×`side` image grid at (0, row, column).
        case flux(text: Int, side: Int)
        /// Random integer positions in `0..<maximum` on every axis.
        case random(maximum: Int)
    }

    static func rotary(_ dtype: DType, _ shape: [Int], axes: [Int], positions: Positions) -> SelfTestCase {
        SelfTestCase(kernel: "rope", dtype: dtype, shape: SelfTestShapes.text(shape), tolerance: SelfTestShapes.outputRounding(dtype)) { env in
            let tokens = shape[1]
            var ids = [Float](repeating: 0, count: tokens * axes.count)
            switch positions {
            case let .flux(text, side):
                for image in 0..<(tokens - text) {
                    ids[(text + image) * axes.count + 1] = Float(image / side)
                    ids[(text + image) * axes.count + 2] = Float(image % side)
                }
            case let .random(maximum):
                for index in ids.indices { ids[index] = Float(env.random.next() % UInt64(maximum)) }
            }
            let table = try RotaryTable.flux(positionIDs: Tensor(ids, shape: [tokens, axes.count]), axesDims: axes)
            let x = env.randomTensor(shape, dtype, in: -3...3)
            let gpuX = try env.upload(x)
            let gpuCos = try DeviceTensor(uploading: table.cosTensor, context: env.context, stream: env.stream)
            let gpuSin = try DeviceTensor(uploading: table.sinTensor, context: env.context, stream: env.stream)
            let output = try env.poisonedOutput(shape, dtype)
            let launch = { try env.context.applyRotary(gpuX, cos: gpuCos, sin: gpuSin, into: output) }
            try launch()
            let result = try env.download(output)
            let reference = try CPUOps.applyRotary(x.float32, table: table)
            var comparison = SelfTestComparison()
            try comparison.compare(result, with: reference.floats())
            let milliseconds = try env.time(launch)
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds,
                                   bytes: 2 * SelfTestShapes.bytes(x.tensor.elementCount, dtype))
        }
    }
}
