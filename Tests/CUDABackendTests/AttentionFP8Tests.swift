@testable import CUDABackend
import NunchakuCore
import Testing

/// The float8 attention path without a GPU: the CPU reference of its operands on hand-computed values, the v key
/// order against the kernel's register layout, tensor maps, availability, and what NVRTC makes of the kernels.
@Suite struct AttentionFP8Tests {
    @Test func valuePositionsFollowTheRegisterLayoutOfP() {
        // A thread t of a quad holds keys 2t, 2t + 1, 8 + 2t, 9 + 2t of each 16 (accumulator blocks 2m, 2m + 1); the
        // e4m3 A operand wants its byte j at key position 4t + j.
        for group in [0, 16, 4592] {
            for t in 0..<4 {
                for (j, key) in [2 * t, 2 * t + 1, 8 + 2 * t, 9 + 2 * t].enumerated() {
                    #expect(AttentionFP8Reference.valuePosition(group + key) == group + 4 * t + j)
                }
            }
        }
        #expect(Set((0..<64).map(AttentionFP8Reference.valuePosition)) == Set(0..<64))
        #expect(AttentionFP8Launch.paddedTokens(1) == 16 && AttentionFP8Launch.paddedTokens(333) == 336
                && AttentionFP8Launch.paddedTokens(4608) == 4608)
    }

    /// One sample, one head, 3 tokens: amax 2 for q (scale 2/448), codes by hand from e4m3's grid.
    @Test func quantizationMatchesHandComputedCodes() {
        let d = 128
        var query = [Float](repeating: 0, count: 3 * d), key = query, value = query
        query[0] = 2            // amax → 448 = 0x7E
        query[1] = -1           // −224 = −1.75 · 2^7 → 0x80 | 0x76
        query[2] = 0.01         // 2.24 → nearest e4m3 2.25 = 1.125 · 2^1 → 0x41
        query[d] = 1e-4         // 0.0224 = 1.43 · 2^-6 → 1.375 · 2^-6 = 0x0B (the smallest binade of normals)
        key[5] = -3             // amax 3: −448 → 0xFE
        value[2 * d + 7] = 0.5  // amax 0.5: token 2, dimension 7 → 448
        value[1 * d + 7] = 0.25 // token 1 → 224 = 0x76
        let result = AttentionFP8Reference.quantize(query: query, key: key, value: value, batch: 1, tokens: 3, heads: 1)
        let scales: [Float] = [Float(2) / 448, Float(3) / 448, Float(0.5) / 448]
        #expect(result.scales == scales)
        #expect(Array(result.query[0..<3]) == [0x7E, 0xF6, 0x41])
        #expect(result.query[d] == 0x0B)
        #expect(result.key[5] == 0xFE && result.key.filter { $0 != 0 }.count == 1)
        // v transposed to [1, 1, 128, 16]: token t of row 7 at position valuePosition(t).
        #expect(result.valueTransposed.count == d * 16)
        #expect(result.valueTransposed[7 * 16 + AttentionFP8Reference.valuePosition(2)] == 0x7E)
        #expect(result.valueTransposed[7 * 16 + AttentionFP8Reference.valuePosition(1)] == 0x76)
        #expect(result.valueTransposed.filter { $0 != 0 }.count == 2)
    }

    @Test func dequantizedOperandsStayWithinE4M3Rounding() {
        let (batch, tokens, heads) = (2, 37, 3)
        var random = SplitMix64(seed: 7)
        let count = batch * tokens * heads * AttentionFP8Launch.headDim
        let inputs: [[Float]] = (0..<3).map { part in
            (0..<count).map { _ -> Float in (Float(random.next() % 20001) / 10000 - 1) * Float(part + 1) }
        }
        let operands = AttentionFP8Reference.quantize(query: inputs[0], key: inputs[1], value: inputs[2], batch: batch, tokens: tokens,
                                                      heads: heads)
        let values = AttentionFP8Reference.dequantize(operands, batch: batch, tokens: tokens, heads: heads)
        for (input, output) in zip(inputs, [values.query, values.key, values.value]) {
            // Normal e4m3 values are within 2^-4 relative; subnormals within half a step of 2^-9 · scale.
            let scale: Float = input.map(abs).max()! / 448
            let subnormalHalfStep: Float = scale * 0.001953125 / 2
            let worst = zip(input, output).map { x, y -> Float in abs(x - y) / max(abs(x) / 16, subnormalHalfStep) }.max()!
            #expect(worst <= 1.0001)
        }
        // Keys past S in the padded v rows are zero codes.
        let padded = AttentionFP8Launch.paddedTokens(tokens)
        for row in 0..<(batch * heads * AttentionFP8Launch.headDim) {
            for position in tokens..<padded {
                #expect(operands.valueTransposed[row * padded + AttentionFP8Reference.valuePosition(position)] == 0)
            }
        }
    }

    @Test func tensorMapsDescribeCodesAndTransposedValues() throws {
        let maps = try AttentionFP8Launch.tensorMapLayouts(query: 0x1000, key: 0x2000, value: 0x3000, batch: 2, tokens: 333, heads: 3)
        #expect(maps.map(\.dimensions) == [[128, 3, 333, 2], [128, 3, 333, 2], [336, 128, 3, 2]])
        #expect(maps[0].strides == [128, 384, 333 * 384] && maps[2].strides == [336, 128 * 336, 3 * 128 * 336])
        #expect(maps.map(\.box) == [[128, 1, 128, 1], [128, 1, 128, 1], [128, 128, 1, 1]])
        #expect(maps.allSatisfy { $0.elementType == .uint8 && $0.swizzle == .bytes128 && $0.boxBytes == 16_384 })
        #expect(throws: CUDAError.self) {
            try AttentionFP8Launch.tensorMapLayouts(query: 0x1008, key: 0x2000, value: 0x3000, batch: 1, tokens: 16, heads: 1)
        }
    }

    @Test func onlySm90aRunsTheE4M3Kernel() {
        #expect(AttentionFP8Launch.sharedMemoryBytes == 115_824)
        #expect(AttentionFP8Launch.isAvailable(target: CUDATarget(architecture: 90, architectureSpecific: true), sharedMemoryLimit: 232_448))
        #expect(!AttentionFP8Launch.isAvailable(target: CUDATarget(architecture: 90, architectureSpecific: true), sharedMemoryLimit: 100_000))
        for target in [CUDATarget(architecture: 89), CUDATarget(architecture: 90, output: .ptx), CUDATarget(architecture: 100, architectureSpecific: true)] {
            #expect(!AttentionFP8Launch.isAvailable(target: target, sharedMemoryLimit: 232_448), "\(target)")
        }
        #expect(AttentionPrecision(rawValue: "fp8") == .fp8 && AttentionPrecision(rawValue: "fp16") == nil)
    }
}

/// What NVRTC makes of the float8 operand passes for sm_90a.
@Suite(.enabled(if: NVRTCAvailability.usable || NVRTCAvailability.required,
                "NVRTC not found (pip install nvidia-cuda-nvrtc, or set NUNCHAKU_NVRTC_PATH); set NUNCHAKU_CI=1 to fail instead"))
struct AttentionFP8CompileTests {
    /// The e4m3 entry points' wgmma and conversion are checked with the rest of the file's sm_90a PTX
    /// (`AttentionWGMMACompileTests`); here the operand passes.
    @Test func operandPassesNameEveryEntryPoint() throws {
        let compiler = KernelCompiler(nvrtc: try NVRTC.shared(), cache: KernelCache(disabledBecause: "test"))
        let operands = try #require(KernelRegistry.sources.first { $0.name == "attention_fp8_operands.cu" })
        let (ptx, _) = try compiler.build(operands, for: CUDATarget(architecture: 90, architectureSpecific: true, output: .ptx))
        let text = String(decoding: ptx.bytes, as: UTF8.self)
        for kernel in operands.kernelNames { #expect(text.contains(".entry \(kernel)(")) }
        #expect(text.contains("cvt.rn.satfinite.e4m3x2.f32"))
    }
}
