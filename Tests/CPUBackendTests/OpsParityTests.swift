import Testing
import NunchakuCore
@testable import CPUBackend

/// The CPU ops against PyTorch on random inputs (fixture written by scripts/parity/make_op_fixtures.py).
struct OpsParityTests {
    let fixture: FixtureFile

    init() throws { fixture = try FixtureFile(named: "ops.safetensors") }

    /// Checks an fp32 op output elementwise against PyTorch.
    private func expectMatches(_ result: Tensor, _ prefix: String, tolerance: Double = 1e-6) throws {
        let expected = try fixture("\(prefix).out")
        #expect(result.shape == expected.shape, "\(prefix) shape")
        #expect(result.dtype == .f32)
        let error = maxElementError(result.floats(), expected.floats())
        #expect(error <= tolerance, "\(prefix): max relative element error \(error)")
    }

    /// Checks a bf16 op output: it must be the fp32 result rounded once to bf16, except for rare elements one bf16
    /// step away (where our fp32 value and PyTorch's fall on either side of a rounding boundary).
    private func expectBF16Matches(_ result: Tensor, _ prefix: String) throws {
        let expected = try fixture("\(prefix).out")
        #expect(result.dtype == .bf16, "\(prefix) dtype")
        #expect(result.shape == expected.shape, "\(prefix) shape")
        let ours = try result.scalars(as: UInt16.self)
        let rounded = try Tensor.rounding(expected.floats(), shape: expected.shape, to: .bf16).scalars(as: UInt16.self)
        let differing = zip(ours, rounded).filter { $0 != $1 }
        #expect(differing.allSatisfy { abs(Int($0) - Int($1)) == 1 }, "\(prefix): an element is more than one bf16 step off")
        #expect(differing.count * 50 <= ours.count, "\(prefix): \(differing.count) of \(ours.count) elements differ by one step")
    }

    @Test func layerNorm() throws {
        try expectMatches(CPUOps.layerNorm(fixture("layer_norm.plain.x")), "layer_norm.plain")
        try expectMatches(
            CPUOps.layerNorm(fixture("layer_norm.affine.x"), weight: fixture("layer_norm.affine.weight"),
                             bias: fixture("layer_norm.affine.bias")), "layer_norm.affine")
        try expectBF16Matches(CPUOps.layerNorm(fixture("layer_norm.plain_bf16.x")), "layer_norm.plain_bf16")
    }

    @Test func rmsNorm() throws {
        try expectMatches(CPUOps.rmsNorm(fixture("rms_norm.heads.x"), weight: fixture("rms_norm.heads.weight")), "rms_norm.heads")
        try expectBF16Matches(
            CPUOps.rmsNorm(fixture("rms_norm.heads_bf16.x"), weight: fixture("rms_norm.heads_bf16.weight")), "rms_norm.heads_bf16")
    }

    @Test func modulationAndGatedAdd() throws {
        let (x, shift, scale) = try (fixture("modulate.diffusers.x"), fixture("modulate.diffusers.shift"), fixture("modulate.diffusers.scale"))
        try expectMatches(CPUOps.modulate(x, shift: shift, scale: scale), "modulate.diffusers", tolerance: 0)
        try expectMatches(CPUOps.modulate(x, shift: shift, scale: scale, scaleOffset: 0), "modulate.folded", tolerance: 0)
        try expectMatches(
            CPUOps.gatedAdd(fixture("gated_add.plain.residual"), gate: fixture("gated_add.plain.gate"), fixture("gated_add.plain.y")),
            "gated_add.plain", tolerance: 0)
        try expectBF16Matches(
            CPUOps.modulate(fixture("modulate.diffusers_bf16.x"), shift: fixture("modulate.diffusers_bf16.shift"),
                            scale: fixture("modulate.diffusers_bf16.scale")), "modulate.diffusers_bf16")
    }

    @Test func activations() throws {
        try expectMatches(CPUOps.geluTanh(fixture("gelu_tanh.plain.x")), "gelu_tanh.plain")
        try expectMatches(CPUOps.silu(fixture("silu.plain.x")), "silu.plain")
        try expectBF16Matches(CPUOps.geluTanh(fixture("gelu_tanh.plain_bf16.x")), "gelu_tanh.plain_bf16")
    }

    @Test func fluxRotaryTableAndRotation() throws {
        let table = try RotaryTable.flux(positionIDs: fixture("rope.flux.ids"), axesDims: [16, 56, 56], theta: 10000)
        #expect(table.headDim == 128)
        // Angles in float64 then rounded: the tables agree with diffusers to the last bit or one ulp.
        #expect(maxElementError(table.cos, try fixture("rope.flux.cos").floats(), floor: 1e-6) <= 1.2e-7)
        #expect(maxElementError(table.sin, try fixture("rope.flux.sin").floats(), floor: 1e-6) <= 1.2e-7)
        try expectMatches(CPUOps.applyRotary(fixture("rope.flux.x"), table: table), "rope.flux")
    }

    @Test func attention() throws {
        try expectMatches(
            CPUOps.attention(query: fixture("attention.d64.query"), key: fixture("attention.d64.key"), value: fixture("attention.d64.value")),
            "attention.d64", tolerance: 1e-5)
        try expectMatches(
            CPUOps.attention(
                query: fixture("attention.d128_masked.query"), key: fixture("attention.d128_masked.key"),
                value: fixture("attention.d128_masked.value"), keyMask: fixture("attention.d128_masked.mask")),
            "attention.d128_masked", tolerance: 1e-5)
        try expectBF16Matches(
            CPUOps.attention(
                query: fixture("attention.d64_bf16.query"), key: fixture("attention.d64_bf16.key"),
                value: fixture("attention.d64_bf16.value")), "attention.d64_bf16")
    }
}
