import CPUBackend
import CUDABackend
import NunchakuCore

/// `attention.fp8.heads`: the float8 operands written by the QKV-heads pass (`writeHeads(…into: AttentionFP8Heads…)`
/// per token stream, then `writeValueCodes`; Hopper only, skipped elsewhere) for one or two streams (text at token 0,
/// image after it, each with its own norm weights, in one case with a few large entries), into poisoned buffers. The
/// q and k codes, the 16-bit v, the transposed v codes and the scales must equal `AttentionFP8HeadsReference` bit for
/// bit; `attentionFP8` on them (output poisoned) is compared with attention of the dequantized codes (the kernel
/// alone), and the note gives the error against attention of the unquantized heads, which fails the case above
/// `AttentionFP8SelfTests.inputTolerance`. The time is that of the operand writes (maxima zeroed, heads, v codes).
enum AttentionFP8HeadsSelfTests {
    static let cases: [SelfTestCase] = [
        heads(.bf16, batch: 1, streams: [SelfTestShapes.fluxTextTokens, SelfTestShapes.fluxTokens - SelfTestShapes.fluxTextTokens],
              heads: SelfTestShapes.fluxHeads, largeWeights: false),
        heads(.bf16, batch: 2, streams: [77, 333], heads: 3, largeWeights: true),
        heads(.f16, batch: 2, streams: [77, 333], heads: 3, largeWeights: false),
        heads(.bf16, batch: 1, streams: [1], heads: 2, largeWeights: false),
    ]

    static func heads(_ dtype: DType, batch: Int, streams sizes: [Int], heads: Int, largeWeights: Bool) -> SelfTestCase {
        let d = AttentionFP8Launch.headDim, joint = sizes.reduce(0, +), shape = [batch, joint, heads, d]
        let label = "B=\(batch) streams=\(SelfTestShapes.text(sizes)) H=\(heads) d=\(d)" + (largeWeights ? " large w" : "")
        return SelfTestCase(kernel: "attention.fp8.heads", dtype: dtype, shape: label, tolerance: AttentionFP8SelfTests.kernelTolerance) { env in
            try env.requireFP8Attention()
            var ids = [Float](repeating: 0, count: joint * 3)
            for index in ids.indices { ids[index] = Float(env.random.next() % 96) }
            let table = try RotaryTable.flux(positionIDs: Tensor(ids, shape: [joint, 3]), axesDims: [16, 56, 56])
            let projections = sizes.map { env.randomTensor([batch, $0, 3 * heads * d], dtype, in: -3...3) }
            let norms = sizes.map { _ in (0..<2).map { _ in normWeight(large: largeWeights, env) } }
            let queryBound = norms.map { AttentionFP8Launch.headBound(normWeight: $0[0]) }.max() ?? 0
            let keyBound = norms.map { AttentionFP8Launch.headBound(normWeight: $0[1]) }.max() ?? 0
            let gpuProjections = try projections.map(env.upload)
            let gpuNorms = try norms.map { pair in
                try pair.map { try DeviceTensor(uploading: Tensor($0, shape: [d]), context: env.context, stream: env.stream) }
            }
            let gpuCos = try DeviceTensor(uploading: table.cosTensor, context: env.context, stream: env.stream)
            let gpuSin = try DeviceTensor(uploading: table.sinTensor, context: env.context, stream: env.stream)
            let offsets = sizes.indices.map { sizes[..<$0].reduce(0, +) }
            let makeHeads = {
                try AttentionFP8Heads(batch: batch, tokens: joint, heads: heads, dtype: dtype, queryBound: queryBound,
                                      keyBound: keyBound, context: env.context)
            }
            let write = { (fp8: AttentionFP8Heads) in
                for index in sizes.indices {
                    try env.context.writeHeads(of: gpuProjections[index], queryNorm: gpuNorms[index][0], keyNorm: gpuNorms[index][1],
                                               cos: gpuCos, sin: gpuSin, into: fp8, tokenOffset: offsets[index])
                }
                try env.context.writeValueCodes(of: fp8)
            }
            let fp8 = try makeHeads()
            let operands = fp8.operands
            for tensor in [operands.query, operands.key, operands.valueTransposed, operands.scales, fp8.value] { try env.poison(tensor) }
            let output = try env.poisonedOutput(shape, dtype)
            try write(fp8)
            try env.context.attentionFP8(operands, into: output)
            let result = try env.download(output)

            let streams = sizes.indices.map { index in
                AttentionFP8HeadsReference.Stream(qkv: projections[index].values, tokens: sizes[index], queryNorm: norms[index][0],
                                                  keyNorm: norms[index][1], tokenOffset: offsets[index])
            }
            let expected = AttentionFP8HeadsReference.heads(
                streams, batch: batch, jointTokens: joint, heads: heads, cos: table.cosTensor.floats(), sin: table.sinTensor.floats(),
                queryBound: queryBound, keyBound: keyBound, dtype: dtype)
            try AttentionFP8SelfTests.checkOperands(operands, expected: expected.operands, env)
            let value = try fp8.value.download(stream: env.stream).floats()
            if let index = value.indices.first(where: { value[$0].bitPattern != expected.value[$0].bitPattern }) {
                throw AttentionFP8SelfTests.OperandMismatch(
                    description: "value \(shape): element \(index) is \(value[index]), the projection has \(expected.value[index])")
            }

            let checked = try AttentionFP8SelfTests.compareOutput(
                result, operands: expected.operands,
                inputs: (expected.query, Tensor(expected.key, shape: shape), Tensor(expected.value, shape: shape)),
                keyMask: nil, inputsName: "the unquantized heads", env)
            let milliseconds = try env.time { try write(try makeHeads()) }
            // Read the projections, write q and k codes and v, read v, write the v codes.
            let elements = Double(batch * joint * heads * d)
            let bytes = elements * (3 * SelfTestShapes.bytes(1, dtype) + 2 + 2 * SelfTestShapes.bytes(1, dtype) + 1)
            let note = "operands bit-exact; vs unquantized heads e=" + SelfTestTable.scientific(checked.inputError)
                + (checked.queries < joint ? "; CPU checks \(checked.queries) of \(joint) queries" : "")
            return SelfTestOutcome(comparison: checked.comparison, milliseconds: milliseconds, bytes: bytes, note: note)
        }
    }

    /// A random RMSNorm weight `[128]` in [0.5, 1.5], rounded to bf16 as the loader stores it; with `large`, four
    /// entries in [6, 10] (a weight that makes the norm bound loose for most heads).
    static func normWeight(large: Bool, _ env: SelfTestEnvironment) -> [Float] {
        var weight = env.randomTensor([AttentionFP8Launch.headDim], .bf16, in: 0.5...1.5).values
        if large {
            let entries = env.randomTensor([4], .bf16, in: 6...10).values
            for entry in entries { weight[Int(env.random.next() % UInt64(weight.count))] = entry }
        }
        return weight
    }
}
