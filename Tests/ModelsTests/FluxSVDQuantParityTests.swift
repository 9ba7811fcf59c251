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
        let output = try MergedFileOutputs.dequantized(variant)
        let fixture = try SVDQuantFluxFixture.named(variant)
        let error = Comparison.relativeError(output.floats(), try fixture.file("sample").floats())
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
        let sample = try MergedFileOutputs.kernelExact(variant)
        #expect(sample.dtype == .bf16)
        let ours = sample.floats()
        let dequantized = Comparison.relativeError(ours, try fixture.file("sample").floats())
        let fakeQuantized = try fixture.file("sample_fake_quant").floats()
        let toFakeQuantized = Comparison.relativeError(ours, fakeQuantized)
        let fakeQuantizedBF16 = Comparison.relativeError(try fixture.file("sample_fake_quant_bf16").floats(), fakeQuantized)
        print("""
            flux-svdq-\(variant) kernel-exact bf16: relative error \(dequantized) against the dequantized fp32 reference, \
            \(toFakeQuantized) against the fake-quantized fp32 reference (whose own bf16 run is \(fakeQuantizedBF16) away)
            """)
        #expect(dequantized <= 3e-2, "\(variant): relative error \(dequantized) against the dequantized fp32 reference")
        #expect(toFakeQuantized <= 1.25 * fakeQuantizedBF16 + 5e-3,
                "\(variant): \(toFakeQuantized) from the fake-quantized reference, whose bf16 run is \(fakeQuantizedBF16) away")
    }

    /// The same checkpoint as a legacy folder (no quantization config: precision and rank come from the tensors),
    /// and converted by `SVDQuantConverter` to a canonical file and a Nunchaku-Lite folder (Python names), gives
    /// the merged file's output bit for bit.
    @Test(arguments: variants)
    func everyContainerLoadsTheSameModel(variant: String) throws {
        let fixture = try SVDQuantFluxFixture.named(variant)
        let expected = try MergedFileOutputs.kernelExact(variant).floats()
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let merged = folder.path + "/merged.safetensors"
        try fixture.writeMerged(fixture.tensors, to: merged)
        try fixture.writeLegacyFolder(to: folder.path + "/legacy")
        let checkpoint = try SVDQuantCheckpoint(path: merged)
        try SVDQuantConverter.convert(checkpoint, to: .canonical, output: folder.path + "/canonical.safetensors")
        try SVDQuantConverter.convert(checkpoint, to: .nunchakuLite, output: folder.path + "/lite")
        for container in ["legacy", "canonical.safetensors", "lite"] {
            let files = try FluxModelFiles(path: folder.path + "/" + container)
            #expect(files.config == fixture.config, "\(container)")
            let output = try fixture.run(FluxTransformer(files: files, computeDType: .bf16)).floats()
            #expect(output == expected, "\(variant) \(container): relative error \(Comparison.relativeError(output, expected))")
        }
    }

    /// `nunchaku convert --to dense` (f32) loads as a dense Nunchaku-layout model and gives the dequantized mode's
    /// output bit for bit: both use the same dense equivalents.
    @Test func theDenseExportRunsLikeTheDequantizedMode() throws {
        let fixture = try SVDQuantFluxFixture.named("int4")
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let merged = folder.path + "/merged.safetensors", dense = folder.path + "/dense.safetensors"
        try fixture.writeMerged(fixture.tensors, to: merged)
        try SVDQuantConverter.convert(SVDQuantCheckpoint(path: merged), to: .dense, output: dense, denseDType: .f32)
        let output = try fixture.run(FluxTransformer(files: FluxModelFiles(path: dense), computeDType: .f32)).floats()
        #expect(output == (try MergedFileOutputs.dequantized("int4").floats()))
    }
}

/// The merged file's outputs on the fixture inputs, computed once per variant and test run (debug-build forwards
/// take seconds).
enum MergedFileOutputs {
    private static let kernelExactINT4 = Result { try run("int4", .bf16, .kernelExact) }
    private static let kernelExactNVFP4 = Result { try run("nvfp4", .bf16, .kernelExact) }
    private static let dequantizedINT4 = Result { try run("int4", .f32, .dequantized) }
    private static let dequantizedNVFP4 = Result { try run("nvfp4", .f32, .dequantized) }

    /// Kernel-exact layers, bf16.
    static func kernelExact(_ variant: String) throws -> Tensor {
        try (variant == "int4" ? kernelExactINT4 : kernelExactNVFP4).get()
    }

    /// Dequantized layers, f32.
    static func dequantized(_ variant: String) throws -> Tensor {
        try (variant == "int4" ? dequantizedINT4 : dequantizedNVFP4).get()
    }

    private static func run(_ variant: String, _ computeDType: DType, _ mode: SVDQuantLinearFactory.Mode) throws -> Tensor {
        let fixture = try SVDQuantFluxFixture.named(variant)
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path + "/svdq-\(variant)_r32-flux-tiny.safetensors"
        try fixture.writeMerged(fixture.tensors, to: path)
        let model = try FluxTransformer(files: FluxModelFiles(path: path), computeDType: computeDType, quantizedLayers: mode)
        return try fixture.run(model)
    }
}
