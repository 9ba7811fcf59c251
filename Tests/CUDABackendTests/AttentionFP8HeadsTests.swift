import CPUBackend
@testable import CUDABackend
import NunchakuCore
import Testing

/// The float8 heads pass without a GPU: the norm bound, its CPU reference on hand-computed heads and against
/// `CPUOps.rmsNorm` + `applyRotary`, and what NVRTC makes of the kernels.
@Suite struct AttentionFP8HeadsTests {
    static let d = AttentionFP8Launch.headDim

    @Test func boundIsRootDTimesTheLargestWeight() {
        var weight = [Float](repeating: 0.75, count: Self.d)
        weight[9] = -2
        #expect(AttentionFP8Launch.headBound(normWeight: weight) == Float(128).squareRoot() * 2 * (1 + 1 / 128))
        #expect(AttentionFP8Launch.headBound(normWeight: [Float](repeating: 0, count: Self.d)) == 0)
        #expect(AttentionFP8Heads.factorAndScale(bound: 0) == (0, 0))
        #expect(AttentionFP8Heads.factorAndScale(bound: 22.4) == (448 / Float(22.4), Float(22.4) / 448))
    }

    /// One head whose only nonzero value is 3 at dimension 0, weight 2 there: normalized √128 · 2 = 22.627 →
    /// bf16 22.625; the bound is √128 · 2 · (1 + 2⁻⁷) = 22.804, so the code is e4m3(22.625 · 448 / 22.804 = 444.5) = 448
    /// (0x7E), the largest code: a head with all its energy in one channel reaches the bound. Token 0 is not rotated
    /// (cos 1, sin 0); token 1 is rotated by 90° (cos 0, sin 1), which moves the value to dimension 1.
    @Test func handComputedHeadReachesTheLargestCode() {
        var qkv = [Float](repeating: 0, count: 2 * 3 * Self.d)
        for token in 0..<2 {
            qkv[token * 3 * Self.d] = 3            // q
            qkv[token * 3 * Self.d + Self.d] = -3  // k
            qkv[token * 3 * Self.d + 2 * Self.d + 5] = 0.5 + Float(token)  // v
        }
        var weight = [Float](repeating: 1, count: Self.d)
        weight[0] = 2
        let cos = [Float](repeating: 1, count: Self.d) + [Float](repeating: 0, count: Self.d)
        let sin = [Float](repeating: 0, count: Self.d) + [Float](repeating: 1, count: Self.d)
        let bound = AttentionFP8Launch.headBound(normWeight: weight)
        let stream = AttentionFP8HeadsReference.Stream(qkv: qkv, tokens: 2, queryNorm: weight, keyNorm: weight, tokenOffset: 0)
        let result = AttentionFP8HeadsReference.heads([stream], batch: 1, jointTokens: 2, heads: 1, cos: cos, sin: sin,
                                                       queryBound: bound, keyBound: bound, dtype: .bf16)
        #expect(result.query[0] == 22.625 && result.query[Self.d + 1] == 22.625)
        let query = result.operands.query, key = result.operands.key
        #expect(query[0] == 0x7E && key[0] == 0xFE)                          // ±448
        #expect(query[Self.d + 1] == 0x7E && key[Self.d + 1] == 0xFE)        // rotated into dimension 1
        // Everything else is a zero code (−0 = 0x80 where a product of −22.625 and 0 is subtracted).
        #expect(query.filter { $0 & 0x7F != 0 }.count == 2 && key.filter { $0 & 0x7F != 0 }.count == 2)
        let scale = bound / 448
        #expect(result.operands.scales == [scale, scale, Float(1.5) / 448])
        // v: amax 1.5 (token 1) → 448; token 0's 0.5 → 149.33 → 144 = 1.125 · 2^7 (0x71).
        let padded = AttentionFP8Launch.paddedTokens(2)
        #expect(result.operands.valueTransposed[5 * padded + AttentionFP8Reference.valuePosition(1)] == 0x7E)
        #expect(result.operands.valueTransposed[5 * padded + AttentionFP8Reference.valuePosition(0)] == 0x71)
    }

    /// Two streams (text at 0, image after it) with their own weights: the reference's q and k before quantization
    /// against `CPUOps.rmsNorm` + `applyRotary` (float32, not rounded in between: within the bf16 rounding), every
    /// element within the bound, the codes within e4m3 rounding of them, v joined and coded as the dynamic scheme.
    @Test func referenceAgreesWithCPUOps() throws {
        let (batch, sizes, heads) = (2, [3, 5], 2)
        let joint = sizes.reduce(0, +), width = heads * Self.d
        var random = SplitMix64(seed: 11)
        let uniform = { (low: Float, high: Float) -> Float in low + (high - low) * Float(random.next() % 100_001) / 100_000 }
        let bf16 = { (x: Float) in FloatFormats.float(bf16: FloatFormats.bf16Bits(x)) }
        let streams = sizes.enumerated().map { index, tokens in
            var qkv = (0..<(batch * tokens * 3 * width)).map { _ in bf16(uniform(-3, 3)) }
            // Token 1's q and k head 0 with one massive channel where the weight is largest: near the bound.
            qkv[3 * width] = 400
            qkv[4 * width] = -400
            var norms = (0..<2).map { _ in (0..<Self.d).map { _ in bf16(uniform(0.5, 1.5)) } }
            norms[0][0] = 1.5
            norms[1][0] = 1.5
            return AttentionFP8HeadsReference.Stream(qkv: qkv, tokens: tokens, queryNorm: norms[0], keyNorm: norms[1],
                                                     tokenOffset: sizes[..<index].reduce(0, +))
        }
        let ids = Tensor((0..<(joint * 3)).map { Float($0 % 7) }, shape: [joint, 3])
        let table = try RotaryTable.flux(positionIDs: ids, axesDims: [16, 56, 56])
        let queryBound = streams.map { AttentionFP8Launch.headBound(normWeight: $0.queryNorm) }.max()!
        let keyBound = streams.map { AttentionFP8Launch.headBound(normWeight: $0.keyNorm) }.max()!
        let result = AttentionFP8HeadsReference.heads(streams, batch: batch, jointTokens: joint, heads: heads,
                                                       cos: table.cosTensor.floats(), sin: table.sinTensor.floats(),
                                                       queryBound: queryBound, keyBound: keyBound, dtype: .bf16)
        var joined = [[Float]](repeating: [Float](repeating: 0, count: batch * joint * width), count: 3)
        for stream in streams {
            for sample in 0..<batch {
                for token in 0..<stream.tokens {
                    let source = (sample * stream.tokens + token) * 3 * width, target = (sample * joint + stream.tokenOffset + token) * width
                    for part in 0..<3 { joined[part].replaceSubrange(target..<(target + width), with: stream.qkv[(source + part * width)..<(source + (part + 1) * width)]) }
                }
            }
        }
        let shape = [batch, joint, heads, Self.d]
        for (part, bound) in [(0, queryBound), (1, keyBound)] {
            // Each stream's own weight on its rows: normalize per stream, then rotate the joint rows.
            var normalized = [Float]()
            for sample in 0..<batch {
                for stream in streams {
                    let rows = (sample * joint + stream.tokenOffset) * width..<((sample * joint + stream.tokenOffset + stream.tokens) * width)
                    let weight = Tensor(part == 0 ? stream.queryNorm : stream.keyNorm, shape: [Self.d])
                    normalized += try CPUOps.rmsNorm(Tensor(Array(joined[part][rows]), shape: [stream.tokens, heads, Self.d]), weight: weight).floats()
                }
            }
            let expected = try CPUOps.applyRotary(Tensor(normalized, shape: shape), table: table).floats()
            let actual = part == 0 ? result.query : result.key
            let codes = part == 0 ? result.operands.query : result.operands.key
            let scale = AttentionFP8Heads.factorAndScale(bound: bound).scale
            #expect(actual.map(abs).max()! <= bound && actual.map(abs).max()! > bound / 2)
            for index in actual.indices {
                #expect(abs(actual[index] - expected[index]) <= bound / 256, "part \(part) element \(index)")
                let dequantized = FloatFormats.float(e4m3fn: codes[index]) * scale
                #expect(abs(dequantized - actual[index]) <= max(abs(actual[index]) / 16, scale / 1024) * 1.0001, "code \(index)")
            }
        }
        #expect(result.value == joined[2])
        let v = AttentionFP8Reference.valueCodes(joined[2], batch: batch, tokens: joint, heads: heads)
        #expect(result.operands.valueTransposed == v.codes)
        let pairs = batch * heads
        #expect(result.operands.scales == [Float](repeating: queryBound / 448, count: pairs)
                + [Float](repeating: keyBound / 448, count: pairs) + v.scales)
    }
}

/// What NVRTC makes of the float8 heads pass for sm_90a.
@Suite(.enabled(if: NVRTCAvailability.usable || NVRTCAvailability.required,
                "NVRTC not found (pip install nvidia-cuda-nvrtc, or set NUNCHAKU_NVRTC_PATH); set NUNCHAKU_CI=1 to fail instead"))
struct AttentionFP8HeadsCompileTests {
    /// The CPU reference can only match bit for bit if the kernel uses IEEE square root and division (no approximate
    /// reciprocal square root); the maxima are merged by a 32-bit atomic max, the codes by the saturating conversion.
    @Test func headsPassUsesIEEEArithmeticAndAtomicMaxima() throws {
        let compiler = KernelCompiler(nvrtc: try NVRTC.shared(), cache: KernelCache(disabledBecause: "test"))
        let source = try #require(KernelRegistry.sources.first { $0.name == "ops_qkv_heads.cu" })
        let (ptx, _) = try compiler.build(source, for: CUDATarget(architecture: 90, architectureSpecific: true, output: .ptx))
        let text = String(decoding: ptx.bytes, as: UTF8.self)
        for kernel in source.kernelNames { #expect(text.contains(".entry \(kernel)(")) }
        #expect(text.contains("sqrt.rn.f32") && text.contains("div.rn.f32") && !text.contains("rsqrt.approx"))
        #expect(text.contains("max.u32"))
        #expect(text.contains("cvt.rn.satfinite.e4m3x2.f32"))
    }
}
