import Foundation
import Testing
import NunchakuCore
@testable import CPUBackend

/// The CPU ops on small inputs whose results are worked out by hand.
struct OpsHandComputedTests {
    private func expectClose(_ actual: [Float], _ expected: [Double], tolerance: Double = 1e-6, _ comment: Comment? = nil) {
        #expect(actual.count == expected.count, comment)
        for (a, e) in zip(actual, expected) {
            #expect(abs(Double(a) - e) <= tolerance * max(1, abs(e)), "\(a) vs \(e) \(comment?.description ?? "")")
        }
    }

    @Test func layerNormCentersAndScales() throws {
        // mean 2.5, variance 1.25.
        let x = Tensor([1, 2, 3, 4, 10, 10, 10, 10], shape: [2, 4])
        let deviation = (1.25 + 1e-6).squareRoot()
        let plain = try CPUOps.layerNorm(x).floats()
        expectClose(Array(plain[0..<4]), [-1.5, -0.5, 0.5, 1.5].map { $0 / deviation })
        expectClose(Array(plain[4..<8]), [0, 0, 0, 0])  // a constant row normalizes to zero
        let affine = try CPUOps.layerNorm(x, weight: Tensor([2, 2, 2, 2], shape: [4]), bias: Tensor([1, 0, 0, 0], shape: [4]))
        expectClose(Array(affine.floats()[0..<4]), [1 - 3 / deviation, -1 / deviation, 1 / deviation, 3 / deviation])
    }

    @Test func rmsNormUsesRootMeanSquare() throws {
        // mean of squares (9 + 16) / 2 = 12.5.
        let y = try CPUOps.rmsNorm(Tensor([3, 4], shape: [1, 2]), weight: Tensor([1, 2], shape: [2])).floats()
        let rms = (12.5 + 1e-6).squareRoot()
        expectClose(y, [3 / rms, 8 / rms])
    }

    @Test func modulationBroadcastsPerSample() throws {
        let x = Tensor([1, 2, 3, 4, 5, 6, 7, 8], shape: [2, 2, 2])   // 2 samples × 2 tokens × 2 channels
        let shift = Tensor([10, 20, 30, 40], shape: [2, 2])
        let scale = Tensor([1, 0, -1, 0.5], shape: [2, 2])
        #expect(try CPUOps.modulate(x, shift: shift, scale: scale).floats() == [12, 22, 16, 24, 30, 49, 30, 52])
        #expect(try CPUOps.modulate(x, shift: shift, scale: scale, scaleOffset: 0).floats() == [11, 20, 13, 20, 25, 43, 23, 44])
        let gate = Tensor([1, 2, 0, -1], shape: [2, 2])
        let y = Tensor([1, 1, 1, 1, 2, 2, 2, 2], shape: [2, 2, 2])
        #expect(try CPUOps.gatedAdd(x, gate: gate, y).floats() == [2, 4, 4, 6, 5, 4, 7, 6])
    }

    @Test func activationsAtKnownPoints() throws {
        let x = Tensor([0, 1, -1, 3], shape: [4])
        // 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) evaluated by hand.
        expectClose(try CPUOps.geluTanh(x).floats(), [0, 0.8411919906082768, -0.15880800939172324, 2.9963625158758997])
        expectClose(try CPUOps.silu(x).floats(), [0, 0.7310585786300049, -0.2689414213699951, 2.8577223804673])
    }

    @Test func bf16OutputsAreRoundedOnce() throws {
        // 1 + 2⁻⁸ is halfway between two bf16 values and rounds to even (1); the op must round only its final sum.
        let x = Tensor([1], shape: [1, 1, 1], dtype: .bf16)
        let shift = Tensor([Float(1.0 / 256) + Float(1.0 / 65536)], shape: [1, 1], dtype: .f32)
        let result = try CPUOps.modulate(x, shift: shift, scale: Tensor([0], shape: [1, 1]))
        #expect(result.dtype == .bf16)
        #expect(result.floats() == [1 + 1.0 / 128])   // 1.0039…, just above the midpoint, rounds up
        // f16 in, f16 out: SiLU(1) = 0.7310585… rounds to the nearest half, 0.73095703125.
        let half = try CPUOps.silu(Tensor([1], shape: [1], dtype: .f16))
        #expect(half.dtype == .f16)
        #expect(half.floats() == [0.73095703125])
    }

    @Test func rotaryRotatesPairsByPositionTimesFrequency() throws {
        // One axis of width 2 has frequency 1, so the pair turns by `position` radians.
        let ids = Tensor([0, Float.pi / 2, Float.pi], shape: [3, 1])
        let table = try RotaryTable.flux(positionIDs: ids, axesDims: [2])
        let x = Tensor([1, 0, 1, 0, 0.5, 2], shape: [1, 3, 1, 2])
        expectClose(try CPUOps.applyRotary(x, table: table).floats(), [1, 0, 0, 1, -0.5, -2], tolerance: 1e-6)
        // Axis k of width 4 uses frequencies 1 and 1/theta^(1/2) = 0.01 for theta 10000.
        let wide = try RotaryTable.flux(positionIDs: Tensor([0, 2], shape: [1, 2]), axesDims: [2, 4])
        expectClose(wide.cos, [1, 1, cos(2), cos(2), cos(0.02), cos(0.02)])
        expectClose(wide.sin, [0, 0, sin(2), sin(2), sin(0.02), sin(0.02)])
    }

    @Test func attentionAveragesValuesByScore() throws {
        // Two keys with equal scores average their values; a masked key is ignored.
        let q = Tensor([1, 0], shape: [1, 1, 1, 2])
        let k = Tensor([0, 1, 0, -1], shape: [1, 2, 1, 2])
        let v = Tensor([2, 4, 6, 8], shape: [1, 2, 1, 2])
        expectClose(try CPUOps.attention(query: q, key: k, value: v).floats(), [4, 6])
        let mask = Tensor([0, 1], shape: [1, 2], dtype: .bool)
        expectClose(try CPUOps.attention(query: q, key: k, value: v, keyMask: mask).floats(), [6, 8])
        // Scores 1/√2 and 0: weights e^(1/√2) and 1.
        let k2 = Tensor([1, 0, 0, 0], shape: [1, 2, 1, 2])
        let w = exp(1 / 2.0.squareRoot())
        expectClose(try CPUOps.attention(query: q, key: k2, value: v).floats(), [(2 * w + 6) / (w + 1), (4 * w + 8) / (w + 1)])
    }

    @Test func attentionRejectsAFullyMaskedSample() {
        let q = Tensor([1, 0], shape: [1, 1, 1, 2]), k = Tensor([0, 1], shape: [1, 1, 1, 2])
        #expect(throws: NunchakuError.self) {
            try CPUOps.attention(query: q, key: k, value: k, keyMask: Tensor([0], shape: [1, 1], dtype: .bool))
        }
        #expect(throws: NunchakuError.self) {
            try CPUOps.attention(query: q, key: Tensor([0, 1, 2, 3], shape: [1, 1, 1, 4]), value: k)
        }
    }

    @Test func concatAndSplitTokensKeepSamplesApart() throws {
        let text = Tensor([1, 2, 3, 4], shape: [2, 1, 2], dtype: .bf16)           // 2 samples × 1 token
        let image = Tensor([5, 6, 7, 8, 9, 10, 11, 12], shape: [2, 2, 2], dtype: .bf16)  // 2 samples × 2 tokens
        let joint = try CPUOps.concatTokens([text, image])
        #expect(joint.shape == [2, 3, 2])
        #expect(joint.dtype == .bf16)
        #expect(joint.floats() == [1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12])
        let parts = try CPUOps.splitTokens(joint, sizes: [1, 2])
        #expect(parts[0].floats() == text.floats())
        #expect(parts[1].floats() == image.floats())
        #expect(throws: NunchakuError.self) { try CPUOps.splitTokens(joint, sizes: [1, 1]) }
        #expect(throws: NunchakuError.self) { try CPUOps.concatTokens([text, image.converted(to: .f32)]) }
    }

    @Test func opsRejectBadOperands() {
        let x = Tensor([1, 2, 3, 4], shape: [1, 2, 2])
        #expect(throws: NunchakuError.dtypeMismatch(context: "geluTanh", expected: cpuActivationDTypes, actual: .i32)) {
            try CPUOps.geluTanh(x.converted(to: .i32))
        }
        #expect(throws: NunchakuError.shapeMismatch(context: "rmsNorm weight", expected: [2], actual: [3])) {
            try CPUOps.rmsNorm(x, weight: Tensor([1, 1, 1], shape: [3]))
        }
        #expect(throws: NunchakuError.shapeMismatch(context: "modulate shift", expected: [1, 2], actual: [2, 2])) {
            try CPUOps.modulate(x, shift: Tensor([1, 1, 1, 1], shape: [2, 2]), scale: Tensor([1, 1], shape: [1, 2]))
        }
        #expect(throws: NunchakuError.self) {
            try CPUOps.applyRotary(Tensor([1, 2], shape: [1, 1, 1, 2]), table: RotaryTable.flux(
                positionIDs: Tensor([0, 0], shape: [2, 1]), axesDims: [2]))
        }
        #expect(throws: NunchakuError.self) {
            try RotaryTable.flux(positionIDs: Tensor([0, 0], shape: [1, 2]), axesDims: [3, 2])
        }
    }
}

/// Attention over several query blocks, heads and samples against a plain `Double` implementation.
@Test func attentionMatchesNaiveReferenceAcrossBlocks() throws {
    let (batch, queries, keys, heads, headDim) = (2, 37, 29, 3, 64)
    var generator = SystemRandomNumberGenerator()
    func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &generator) } }
    let q = random(batch * queries * heads * headDim), k = random(batch * keys * heads * headDim)
    let v = random(batch * keys * heads * headDim)
    let result = try CPUOps.attention(
        query: Tensor(q, shape: [batch, queries, heads, headDim]), key: Tensor(k, shape: [batch, keys, heads, headDim]),
        value: Tensor(v, shape: [batch, keys, heads, headDim])).floats()
    var worst = 0.0
    for b in 0..<batch {
        for h in 0..<heads {
            for i in 0..<queries {
                let qRow = ((b * queries + i) * heads + h) * headDim
                let scores = (0..<keys).map { j -> Double in
                    let kRow = ((b * keys + j) * heads + h) * headDim
                    return (0..<headDim).reduce(0.0) { $0 + Double(q[qRow + $1]) * Double(k[kRow + $1]) } / Double(headDim).squareRoot()
                }
                let weights = scores.map { exp($0 - scores.max()!) }
                let total = weights.reduce(0, +)
                for d in 0..<headDim {
                    let expected = (0..<keys).reduce(0.0) { $0 + weights[$1] * Double(v[((b * keys + $1) * heads + h) * headDim + d]) } / total
                    worst = max(worst, abs(Double(result[qRow + d]) - expected))
                }
            }
        }
    }
    #expect(worst <= 2e-6, "largest absolute difference \(worst)")
}
