import Foundation
import Testing
import CPUBackend
import NunchakuCore
import SVDQuant
@testable import Models

/// SVDQuant FLUX checkpoints against scripts/parity/flux_svdquant_reference.py, which dequantizes the same
/// synthetic checkpoint and runs diffusers (fixtures flux-svdq-int4: dev-like, guidance; flux-svdq-nvfp4:
/// schnell-like). The checkpoint is regenerated and packed here; its tensors must equal the Python packer's.
struct FluxSVDQuantParityTests {
    static let variants = ["int4", "nvfp4"]

    @Test(arguments: variants)
    func packsTheSameCheckpointAsThePythonReference(variant: String) throws {
        let fixture = try SVDQuantFluxFixture.named(variant)
        let expected = try fixture.pythonDigests()
        #expect(Set(fixture.tensors.keys) == Set(expected.keys), "tensor names differ from the Python checkpoint")
        let differing = fixture.tensors.keys.sorted().filter { SyntheticSVDQuantFlux.digest(fixture.tensors[$0]!) != expected[$0] }
        #expect(differing.isEmpty, "packed differently from the Python reference: \(differing.prefix(10))")
    }

    /// The dense equivalent of every quantized layer, in f32: only summation order separates it from diffusers.
    @Test(arguments: variants)
    func dequantizedLayersMatchTheReference(variant: String) throws {
        let fixture = try SVDQuantFluxFixture.named(variant)
        let model = try load(fixture, computeDType: .f32, mode: .dequantized)
        let error = Comparison.relativeError(try fixture.run(model).floats(), try fixture.file("sample").floats())
        print("flux-svdq-\(variant) dequantized f32: relative error \(error) against the dequantized diffusers fp32 reference")
        #expect(error <= 1e-5, "\(variant): relative error \(error)")
    }

    /// Nunchaku's numerics (4-bit activations, 16-bit accumulation) against the dequantize-and-multiply reference
    /// (the target: within 3 %), and against the fake-quantized reference, which quantizes activations the same way
    /// in fp32: there only bf16 rounding separates the two, so the distance must stay near that of the fake-quantized
    /// model's own bf16 run (code flips from bf16 inputs make it about 1 %, twice the dense model's bf16 noise).
    @Test(arguments: variants)
    func kernelExactLayersMatchTheReference(variant: String) throws {
        let fixture = try SVDQuantFluxFixture.named(variant)
        let model = try load(fixture, computeDType: .bf16, mode: .kernelExact)
        let clock = ContinuousClock()
        var sample = Tensor(zeros: [1], dtype: .f32)
        let elapsed = try clock.measure { sample = try fixture.run(model) }
        #expect(sample.dtype == .bf16)
        let ours = sample.floats()
        let dequantized = Comparison.relativeError(ours, try fixture.file("sample").floats())
        let fakeQuantized = try fixture.file("sample_fake_quant").floats()
        let toFakeQuantized = Comparison.relativeError(ours, fakeQuantized)
        let fakeQuantizedBF16 = Comparison.relativeError(try fixture.file("sample_fake_quant_bf16").floats(), fakeQuantized)
        print("""
            flux-svdq-\(variant) kernel-exact bf16: relative error \(dequantized) against the dequantized fp32 reference, \
            \(toFakeQuantized) against the fake-quantized fp32 reference (whose own bf16 run is \(fakeQuantizedBF16) away); \
            forward \(elapsed)
            """)
        #expect(dequantized <= 3e-2, "\(variant): relative error \(dequantized) against the dequantized fp32 reference")
        #expect(toFakeQuantized <= 1.25 * fakeQuantizedBF16 + 5e-3,
                "\(variant): \(toFakeQuantized) from the fake-quantized reference, whose bf16 run is \(fakeQuantizedBF16) away")
    }

    /// A legacy folder (transformer_blocks + unquantized_layers + config.json, no quantization config: precision
    /// and rank come from the tensors) loads the same model as the merged file.
    @Test func legacyFolderLoadsLikeTheMergedFile() throws {
        let fixture = try SVDQuantFluxFixture.named("int4")
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try fixture.writeLegacyFolder(to: folder.path)
        let files = try FluxModelFiles(path: folder.path)
        #expect(files.config == fixture.config)
        let model = try FluxTransformer(files: files, computeDType: .bf16)
        let error = Comparison.relativeError(try fixture.run(model).floats(), try fixture.file("sample").floats())
        #expect(error <= 3e-2, "legacy folder: relative error \(error)")
    }

    private func load(_ fixture: SVDQuantFluxFixture, computeDType: DType, mode: SVDQuantLinearFactory.Mode) throws -> FluxTransformer {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path + "/svdq-\(fixture.variant)_r32-flux-tiny.safetensors"
        try fixture.writeMerged(fixture.tensors, to: path)
        return try FluxTransformer(files: FluxModelFiles(path: path), computeDType: computeDType, quantizedLayers: mode)
    }
}
