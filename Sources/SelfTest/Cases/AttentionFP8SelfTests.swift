import CPUBackend
import CUDABackend
import NunchakuCore

/// `attention.fp8`: the float8 path (`quantizeAttentionOperands` + `attentionFP8`, Hopper only; skipped elsewhere)
/// on fresh random q, k, v. The operand codes and scales must equal `AttentionFP8Reference.quantize` bit for bit;
/// the output (poisoned first) is compared with `CPUOps.attention` of the dequantized codes, i.e. the kernel alone,
/// whose own error is P rounded to e4m3; the note gives the error against attention of the 16-bit inputs, which
/// adds the operands' rounding (what a user of `--attention fp8` gets), and the case fails when that passes
/// `inputTolerance`. `attention.fp8.flux` runs the small random INT4 FLUX model with fp8 attention against the CPU.
enum AttentionFP8SelfTests {
    static let cases: [SelfTestCase] = [
        attention(.bf16, batch: 1, heads: SelfTestShapes.fluxHeads, tokens: SelfTestShapes.fluxTokens, masked: false),
        attention(.bf16, batch: 1, heads: SelfTestShapes.fluxHeads, tokens: 1536, masked: false),
        attention(.bf16, batch: 2, heads: 3, tokens: 333, masked: true),
        attention(.bf16, batch: 1, heads: 2, tokens: 1, masked: false),
        attention(.bf16, batch: 2, heads: 5, tokens: 700, masked: false),
        attention(.f16, batch: 2, heads: 3, tokens: 333, masked: true),
        // The whole small FLUX model with fp8 attention against the CPU model (bf16 attention): e4m3 operands add to
        // the bf16 GPU path's 1e-2.
        FluxSelfTests.transformer(.int4, attention: .fp8, tolerance: 5e-2),
    ]

    /// The kernel against attention of its own dequantized operands: P in e4m3 (3 mantissa bits).
    static let kernelTolerance = 5e-2
    /// Against attention of the 16-bit inputs: q, k and v in e4m3 too.
    static let inputTolerance = 1.5e-1

    /// A mismatch between the GPU's operand codes or scales and the CPU reference's.
    struct OperandMismatch: Error, CustomStringConvertible {
        let description: String
    }

    static func attention(_ dtype: DType, batch: Int, heads: Int, tokens: Int, masked: Bool) -> SelfTestCase {
        let d = AttentionFP8Launch.headDim
        let label = "B=\(batch) H=\(heads) S=\(tokens) d=\(d)" + (masked ? " masked" : "")
        return SelfTestCase(kernel: "attention.fp8", dtype: dtype, shape: label, tolerance: kernelTolerance) { env in
            try env.requireFP8Attention()
            let shape = [batch, tokens, heads, d]
            let inputs = [env.randomTensor(shape, dtype, in: -2...2), env.randomTensor(shape, dtype, in: -2...2), env.randomTensor(shape, dtype)]
            let mask = masked ? AttentionSelfTests.randomMask(batch: batch, keys: tokens, env) : nil
            let heads16 = try AttentionHeads(query: env.upload(inputs[0]), key: env.upload(inputs[1]), value: env.upload(inputs[2]))
            let gpuMask = try mask.map { try DeviceTensor(uploading: $0, context: env.context, stream: env.stream) }
            let operands = try AttentionFP8Operands(batch: batch, tokens: tokens, heads: heads, context: env.context)
            for tensor in [operands.query, operands.key, operands.valueTransposed, operands.scales] { try env.poison(tensor) }
            let output = try env.poisonedOutput(shape, dtype)
            let launch = {
                try env.context.quantizeAttentionOperands(heads16, into: operands)
                try env.context.attentionFP8(operands, keyMask: gpuMask, into: output)
            }
            try launch()
            let result = try env.download(output)

            let expected = AttentionFP8Reference.quantize(query: inputs[0].values, key: inputs[1].values, value: inputs[2].values,
                                                          batch: batch, tokens: tokens, heads: heads)
            try checkOperands(operands, expected: expected, env)
            let checked = try compareOutput(result, operands: expected, inputs: (inputs[0].values, inputs[1].float32, inputs[2].float32),
                                            keyMask: mask, inputsName: "the 16-bit inputs", env)
            let milliseconds = try env.time(launch)
            let flops = 4 * Double(batch * heads) * Double(tokens) * Double(tokens) * Double(d)
            let note = "operands bit-exact; vs 16-bit inputs e=" + SelfTestTable.scientific(checked.inputError)
                + (checked.queries < tokens ? "; CPU checks \(checked.queries) of \(tokens) queries" : "")
            return SelfTestOutcome(comparison: checked.comparison, milliseconds: milliseconds, flops: flops, note: note)
        }
    }

    /// The fp8 kernel's `result` `[B, S, H·D]` on sampled queries against CPU attention of the dequantized `operands`
    /// (the returned comparison) and of the unquantized `inputs` (q `[B, S, H, D]` values, k and v tensors), whose
    /// relative error must stay within `inputTolerance`, else `OperandMismatch` naming `inputsName`.
    static func compareOutput(_ result: SelfTestOutput, operands: AttentionFP8Reference.Operands, inputs: (query: [Float], key: Tensor, value: Tensor),
                              keyMask: Tensor?, inputsName: String, _ env: SelfTestEnvironment)
        throws -> (comparison: SelfTestComparison, inputError: Double, queries: Int) {
        let shape = inputs.key.shape
        let (batch, tokens, heads, width) = (shape[0], shape[1], shape[2], shape[2] * shape[3])
        let dequantized = AttentionFP8Reference.dequantize(operands, batch: batch, tokens: tokens, heads: heads)
        let queries = SelfTestRows.sample(from: tokens, maximum: AttentionSelfTests.comparedQueries, random: &env.random)
        let kernelReference = try AttentionSelfTests.referenceRows(
            query: dequantized.query, key: Tensor(dequantized.key, shape: shape), value: Tensor(dequantized.value, shape: shape),
            keyMask: keyMask, tokens: queries)
        var comparison = SelfTestComparison()
        try comparison.compare(result, rows: kernelReference.rows, width: width, with: kernelReference.values)
        let inputReference = try AttentionSelfTests.referenceRows(
            query: inputs.query, key: inputs.key, value: inputs.value, keyMask: keyMask, tokens: queries)
        var inputComparison = SelfTestComparison()
        try inputComparison.compare(result, rows: inputReference.rows, width: width, with: inputReference.values)
        guard inputComparison.relativeError <= inputTolerance else {
            throw OperandMismatch(description: "error against attention of \(inputsName) \(inputComparison.relativeError) > \(inputTolerance)")
        }
        return (comparison, inputComparison.relativeError, queries.count)
    }

    /// Throws `OperandMismatch` naming the first code or scale of the GPU's operands that differs from `expected`.
    static func checkOperands(_ operands: AttentionFP8Operands, expected: AttentionFP8Reference.Operands,
                              _ env: SelfTestEnvironment) throws {
        let parts: [(String, DeviceTensor, [UInt8])] = [
            ("query codes", operands.query, expected.query), ("key codes", operands.key, expected.key),
            ("transposed value codes", operands.valueTransposed, expected.valueTransposed),
            ("scales", operands.scales, expected.scales.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }),
        ]
        for (name, tensor, bytes) in parts {
            let downloaded = try tensor.download(stream: env.stream).withUnsafeBytes { Array($0) }
            if let index = zip(downloaded, bytes).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset ?? (downloaded.count != bytes.count ? 0 : nil) {
                throw OperandMismatch(description: "\(name) \(tensor.shape): byte \(index) is \(downloaded.count > index ? downloaded[index] : 0), the CPU reference has \(bytes.count > index ? bytes[index] : 0)")
            }
        }
    }
}

extension SelfTestEnvironment {
    /// Throws `SelfTestSkip` with the reason where the fp8 attention kernel cannot run (not an sm_90a GPU).
    func requireFP8Attention() throws {
        do {
            try context.checkFP8AttentionAvailable()
        } catch let NunchakuError.unsupported(_, reason) {
            throw SelfTestSkip(reason)
        }
    }
}
