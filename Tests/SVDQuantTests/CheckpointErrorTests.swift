import Foundation
import NunchakuCore
import SafeTensors
import Testing
@testable import SVDQuant

/// Bad checkpoints give one error naming every problem (or the layer and tensor of a bad value), never garbage.
@Suite struct CheckpointErrorTests {
    /// The problems listed by opening `path`, or nil when it opens or fails otherwise.
    static func problems(_ path: String) -> Set<TensorProblem>? {
        do {
            _ = try SVDQuantCheckpoint(path: path)
        } catch let SVDQuantCheckpointError.invalidTensors(_, problems) {
            return Set(problems)
        } catch {}
        return nil
    }

    static func bf16(_ shape: [Int], _ value: Float = 1) -> Tensor {
        halfTensor(Array(repeating: value, count: shape.reduce(1, *)), shape, .bf16)
    }

    /// A merged FLUX file with `edit` applied to its tensors (and `metadata` replacing the model's).
    static func writeMerged(
        _ model: SyntheticModel, in folder: ScratchFolder, metadata: [String: String]? = nil,
        _ edit: (inout [String: Tensor]) throws -> Void = { _ in }
    ) throws -> String {
        var tensors = try model.nunchakuTensors(pythonModules: false, pythonParameters: false)
        try edit(&tensors)
        let path = folder.file("edited-\(UUID().uuidString).safetensors")
        try SyntheticModel.write(tensors, to: path, metadata: metadata ?? model.mergedMetadata)
        return path
    }

    @Test func listsEveryMissingUnexpectedMisshapedAndMistypedTensorTogether() throws {
        let model = SyntheticModel(seed: 101)
        let folder = try ScratchFolder()
        let path = try Self.writeMerged(model, in: folder) { tensors in
            tensors["transformer_blocks.0.qkv_proj.lora_up"] = nil
            tensors["transformer_blocks.0.qkv_proj.extra"] = Self.bf16([4])
            tensors["single_transformer_blocks.0.mlp_fc1.bias"] = Self.bf16([100])
            tensors["transformer_blocks.0.out_proj.smooth"] = Tensor(Array(repeating: 1, count: 128), shape: [128])
            tensors["transformer_blocks.0.norm1.linear.wzeros"] = nil
            tensors["transformer_blocks.0.norm1_context.linear.lora_down"] = Self.bf16([128, 16])
        }
        let expected: Set<TensorProblem> = [
            .missing(tensor: "transformer_blocks.0.qkv_proj.lora_up"),
            .unexpected(tensor: "transformer_blocks.0.qkv_proj.extra"),
            .shape(tensor: "single_transformer_blocks.0.mlp_fc1.bias", expected: [512], actual: [100]),
            .dtype(tensor: "transformer_blocks.0.out_proj.smooth", expected: ["BF16", "F16"], actual: "F32"),
            .missing(tensor: "transformer_blocks.0.norm1.linear.wzeros"),
            .unexpected(tensor: "transformer_blocks.0.norm1_context.linear.lora_down"),
        ]
        #expect(Self.problems(path) == expected)
        // The description names every tensor.
        do {
            _ = try SVDQuantCheckpoint(path: path)
        } catch {
            #expect(expected.allSatisfy { "\(error)".contains($0.tensor) })
        }
    }

    @Test func rejectsDimensionsThatAreNotKernelTileMultiples() throws {
        let model = SyntheticModel(seed: 102)
        let folder = try ScratchFolder()
        let rows = try Self.writeMerged(model, in: folder) { tensors in
            tensors["transformer_blocks.0.out_proj.qweight"] = Tensor(zeros: [192, 64], dtype: .i8)
        }
        #expect(Self.problems(rows) == [.invalid(tensor: "transformer_blocks.0.out_proj.qweight", reason: "N (rows) = 192 is not a positive multiple of 128")])
        let columns = try Self.writeMerged(model, in: folder) { tensors in
            tensors["transformer_blocks.0.out_proj.qweight"] = Tensor(zeros: [128, 80], dtype: .i8)
        }
        #expect(Self.problems(columns) == [.invalid(tensor: "transformer_blocks.0.out_proj.qweight", reason: "K (2 × columns) = 160 is not a positive multiple of 128")])
        let rank = try Self.writeMerged(model, in: folder) { tensors in
            tensors["transformer_blocks.0.out_proj.lora_down"] = Self.bf16([128, 24])
            tensors["transformer_blocks.0.out_proj.lora_up"] = Self.bf16([128, 24])
        }
        #expect(Self.problems(rank) == [.invalid(tensor: "transformer_blocks.0.out_proj.lora_down", reason: "rank 24 is not a multiple of 16")])
        let awq = try Self.writeMerged(model, in: folder) { tensors in
            tensors["single_transformer_blocks.0.norm.linear.qweight"] = Tensor(zeros: [96, 48], dtype: .i32)
        }
        #expect(Self.problems(awq) == [.invalid(tensor: "single_transformer_blocks.0.norm.linear.qweight", reason: "K = 96 is not a positive multiple of 64")])
    }

    @Test func crossChecksTheQuantizationConfig() throws {
        let folder = try ScratchFolder()
        let int4 = SyntheticModel(precision: .int4, rank: 16, seed: 103)
        var metadata = int4.mergedMetadata
        metadata["quantization_config"] = metadata["quantization_config"]!.replacingOccurrences(of: "\"rank\": 16", with: "\"rank\": 32")
        let problems = try #require(Self.problems(Self.writeMerged(int4, in: folder, metadata: metadata)))
        #expect(problems.count == int4.w4a4.count)
        #expect(problems.contains(.invalid(
            tensor: "transformer_blocks.0.mlp_fc2.lora_down", reason: "rank 16, but the quantization_config metadata says 32")))

        let nvfp4 = SyntheticModel(precision: .nvfp4, rank: 16, seed: 104)
        let mislabelled = try Self.writeMerged(nvfp4, in: folder, metadata: int4.mergedMetadata)
        #expect(Self.problems(mislabelled)?.contains(.invalid(
            tensor: "transformer_blocks.0.qkv_proj.wscales",
            reason: "dtype F8_E4M3 holds nvfp4 scales, but the quantization_config metadata says int4")) == true)

        metadata = int4.mergedMetadata
        metadata["quantization_config"] = metadata["quantization_config"]!.replacingOccurrences(of: "64", with: "16")
        let path = try Self.writeMerged(int4, in: folder, metadata: metadata)
        #expect(throws: SVDQuantCheckpointError.invalidConfig(
            source: path, reason: "the quantization_config metadata gives group size 16; int4 uses groups of 64")) {
            try SVDQuantCheckpoint(path: path)
        }
    }

    @Test func badValuesNameTheLayerAndTensor() throws {
        let model = SyntheticModel(seed: 105)
        let folder = try ScratchFolder()
        let path = try Self.writeMerged(model, in: folder) { tensors in
            var wscales = tensors["transformer_blocks.0.mlp_fc1.wscales"]!.contiguous()
            wscales.withUnsafeMutableBytes { $0.storeBytes(of: UInt16(0x7F80), toByteOffset: 10, as: UInt16.self) }  // bf16 +inf
            tensors["transformer_blocks.0.mlp_fc1.wscales"] = wscales
        }
        let checkpoint = try SVDQuantCheckpoint(path: path)  // headers are fine
        let error = thrownError { _ = try checkpoint.w4a4Weights("transformer_blocks.0.mlp_fc1") }
        #expect(mentions(error, "transformer_blocks.0.mlp_fc1.wscales", "inf"))
        let conversion = thrownError { try SVDQuantConverter.convert(checkpoint, to: .canonical, output: folder.file("out.safetensors")) }
        #expect(conversion == error)
        #expect(!FileManager.default.fileExists(atPath: folder.file("out.safetensors")))
    }

    @Test func checksNunchakuLiteTargetsAndParameters() throws {
        let model = SyntheticModel(precision: .int4, seed: 106)
        let folder = try ScratchFolder()
        let lite = folder.file("lite")
        try model.writeLiteFolder(lite)
        var tensors = try model.nunchakuTensors(pythonModules: true, pythonParameters: true, lite: true)
        tensors["transformer_blocks.0.attn.to_qkv.smooth_factor_orig"] = Self.bf16([128])
        tensors["transformer_blocks.0.attn.to_out.0.wcscales"] = Self.bf16([128])
        for parameter in ["qweight", "wscales", "bias", "smooth_factor", "proj_down", "proj_up"] {
            tensors["single_transformer_blocks.0.mlp_fc2.\(parameter)"] = nil
        }
        tensors["extra.qweight"] = Tensor(zeros: [128, 64], dtype: .i8)
        tensors["extra.wscales"] = Self.bf16([2, 128])
        try SyntheticModel.write(tensors, to: lite + "/diffusion_pytorch_model.safetensors", metadata: ["format": "pt"])
        #expect(Self.problems(lite) == [
            .unexpected(tensor: "transformer_blocks.0.attn.to_qkv.smooth_factor_orig"),
            .unexpected(tensor: "transformer_blocks.0.attn.to_out.0.wcscales"),
            .missing(tensor: "single_transformer_blocks.0.mlp_fc2.qweight"), .missing(tensor: "single_transformer_blocks.0.mlp_fc2.wscales"),
            .missing(tensor: "single_transformer_blocks.0.mlp_fc2.smooth_factor"), .missing(tensor: "single_transformer_blocks.0.mlp_fc2.proj_down"),
            .missing(tensor: "single_transformer_blocks.0.mlp_fc2.proj_up"),
            .invalid(tensor: "extra.qweight", reason: "is a quantized layer that the quantization_config does not list as a target"),
        ])

        let config = try String(decoding: FileContents.read(lite + "/config.json"), as: UTF8.self)
        try Data(config.replacingOccurrences(of: "\"group_size\": 64, \"rank\"", with: "\"group_size\": 16, \"rank\"").utf8)
            .write(to: URL(fileURLWithPath: lite + "/config.json"))
        #expect(throws: SVDQuantCheckpointError.invalidConfig(
            source: lite + "/config.json quantization_config", reason: "svdq_w4a4.group_size is 16; int4 uses groups of 64")) {
            try SVDQuantCheckpoint(path: lite)
        }
    }

    @Test func reportsMixedParameterNamesAsMissingAndUnexpected() throws {
        let model = SyntheticModel(seed: 107)
        let folder = try ScratchFolder()
        let path = try Self.writeMerged(model, in: folder) { tensors in
            tensors["transformer_blocks.0.qkv_proj.proj_down"] = tensors.removeValue(forKey: "transformer_blocks.0.qkv_proj.lora_down")
        }
        #expect(Self.problems(path) == [
            .missing(tensor: "transformer_blocks.0.qkv_proj.lora_down"), .unexpected(tensor: "transformer_blocks.0.qkv_proj.proj_down"),
        ])
    }

    @Test func rejectsOtherFormatsAndIncompleteMetadata() throws {
        let model = SyntheticModel(seed: 108)
        let folder = try ScratchFolder()
        let dense = folder.file("dense.safetensors")
        try SyntheticModel.write(["x.weight": Self.bf16([4, 4])], to: dense, metadata: nil)
        #expect(throws: SVDQuantCheckpointError.notSVDQuant(source: dense, format: "BF16 model (no quantized layers)")) {
            try SVDQuantCheckpoint(path: dense)
        }
        try model.writeLegacyFolder(folder.file("legacy"))
        let blocks = folder.file("legacy/transformer_blocks.safetensors")
        #expect(mentions(thrownErrorOfAnyKind { _ = try SVDQuantCheckpoint(path: blocks) }, "not an SVDQuant checkpoint", "not one of its files"))

        for order in [nil, "sideways"] {
            var metadata = model.mergedMetadata
            metadata["nunchaku_layout"] = "canonical"
            metadata["nunchaku_vector_order"] = order
            let path = folder.file("canonical-\(order ?? "none").safetensors")
            try SyntheticModel.write(model.canonicalTensors(vectorOrder: .natural), to: path, metadata: metadata)
            #expect(mentions(thrownErrorOfAnyKind { _ = try SVDQuantCheckpoint(path: path) }, "nunchaku_vector_order"))
        }
        var metadata = model.mergedMetadata
        metadata["config"] = "{not json"
        let broken = try Self.writeMerged(model, in: folder, metadata: metadata)
        #expect(mentions(thrownErrorOfAnyKind { _ = try SVDQuantCheckpoint(path: broken) }, "config", "not valid JSON"))
    }
}

/// The description of the error thrown by `body`, or nil when it returns.
func thrownErrorOfAnyKind(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return "\(error)"
    }
}

func mentions(_ description: String?, _ fragments: String...) -> Bool {
    guard let description else { return false }
    return fragments.allSatisfy { description.contains($0) }
}
