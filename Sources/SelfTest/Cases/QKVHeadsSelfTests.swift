import CPUBackend
import CUDABackend
import NunchakuCore

/// `qkv_heads`: `CUDAContext.writeHeads` for two token streams (text at token 0, image after it) into poisoned
/// joint q/k/v buffers, against the CPU: the streams' q, k, v joined along the tokens, then `CPUOps.rmsNorm` and
/// `CPUOps.applyRotary` on q and k (float32, no rounding in between) — so every element of the joint heads is
/// written by one of the two launches and checked.
enum QKVHeadsSelfTests {
    static let cases: [SelfTestCase] = SelfTestShapes.dtypes.flatMap { dtype in
        [
            heads(dtype, batch: 1, text: SelfTestShapes.fluxTextTokens, image: SelfTestShapes.fluxTokens - SelfTestShapes.fluxTextTokens,
                  heads: SelfTestShapes.fluxHeads, headDim: SelfTestShapes.fluxHeadDim, axes: [16, 56, 56]),
            heads(dtype, batch: 2, text: 77, image: 333, heads: 4, headDim: 64, axes: [8, 28, 28]),
        ]
    }

    static func heads(_ dtype: DType, batch: Int, text: Int, image: Int, heads: Int, headDim: Int, axes: [Int]) -> SelfTestCase {
        let joint = text + image
        let shape = "B=\(batch) T=\(text) N=\(image) H=\(heads) d=\(headDim)"
        return SelfTestCase(kernel: "qkv_heads", dtype: dtype, shape: shape, tolerance: SelfTestShapes.outputRounding(dtype)) { env in
            var ids = [Float](repeating: 0, count: joint * axes.count)
            for index in ids.indices { ids[index] = Float(env.random.next() % 96) }
            let table = try RotaryTable.flux(positionIDs: Tensor(ids, shape: [joint, axes.count]), axesDims: axes)
            let streams = [text, image].map { env.randomTensor([batch, $0, 3 * heads * headDim], dtype, in: -3...3) }
            let norms = (0..<2).map { _ in env.randomTensor([headDim], .f32, in: 0.5...1.5) }
            let gpuNorms = try norms.map(env.upload)
            let gpuCos = try DeviceTensor(uploading: table.cosTensor, context: env.context, stream: env.stream)
            let gpuSin = try DeviceTensor(uploading: table.sinTensor, context: env.context, stream: env.stream)
            let outputShape = [batch, joint, heads, headDim]
            let outputs = AttentionHeads(
                query: try env.poisonedOutput(outputShape, dtype), key: try env.poisonedOutput(outputShape, dtype),
                value: try env.poisonedOutput(outputShape, dtype))
            let gpuStreams = try streams.map(env.upload)
            let launch = {
                for (stream, offset) in zip(gpuStreams, [0, text]) {
                    try env.context.writeHeads(of: stream, queryNorm: gpuNorms[0], keyNorm: gpuNorms[1], cos: gpuCos, sin: gpuSin,
                                               into: outputs, tokenOffset: offset)
                }
            }
            try launch()
            let reference = try Self.reference(streams.map(\.values), sizes: [text, image], batch: batch, heads: heads,
                                               headDim: headDim, norms: norms.map(\.tensor), table: table)
            var comparison = SelfTestComparison()
            for (output, expected) in zip([outputs.query, outputs.key, outputs.value], reference) {
                try comparison.compare(try env.download(output), with: expected)
            }
            let milliseconds = try env.time(launch)
            let elements = batch * joint * 3 * heads * headDim
            return SelfTestOutcome(comparison: comparison, milliseconds: milliseconds, bytes: 2 * SelfTestShapes.bytes(elements, dtype))
        }
    }

    /// The joint q, k, v `[B, J, H, d]` of the CPU: streams joined along the tokens, q and k normalized and rotated.
    static func reference(_ streams: [[Float]], sizes: [Int], batch: Int, heads: Int, headDim: Int, norms: [Tensor],
                          table: RotaryTable) throws -> [[Float]] {
        let joint = sizes.reduce(0, +), width = heads * headDim
        var parts = [[Float]](repeating: [Float](repeating: 0, count: batch * joint * width), count: 3)
        var offset = 0
        for (values, tokens) in zip(streams, sizes) {
            for sample in 0..<batch {
                for token in 0..<tokens {
                    let source = (sample * tokens + token) * 3 * width, target = (sample * joint + offset + token) * width
                    for part in 0..<3 {
                        parts[part].replaceSubrange(target..<(target + width), with: values[(source + part * width)..<(source + (part + 1) * width)])
                    }
                }
            }
            offset += tokens
        }
        let shape = [batch, joint, heads, headDim]
        let rotated = try (0..<2).map { part in
            try CPUOps.applyRotary(try CPUOps.rmsNorm(Tensor(parts[part], shape: shape), weight: norms[part]), table: table).floats()
        }
        return rotated + [parts[2]]
    }
}
