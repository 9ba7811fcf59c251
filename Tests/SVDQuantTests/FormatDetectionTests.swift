import Foundation
import NunchakuCore
import SafeTensors
import SVDQuant
import Testing

/// A temporary checkpoint folder, deleted afterwards.
private final class Fixture {
    let folder: String

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("format-detection-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    /// Writes `tensors` (name → dtype, shape; zero bytes) as `name` with `metadata`; returns its path.
    @discardableResult
    func write(_ name: String, _ tensors: [(String, SafeTensorsDType, [Int])], metadata: [String: String]? = nil) throws -> String {
        var writer = SafeTensorsWriter(metadata: metadata)
        for (tensor, dtype, shape) in tensors {
            guard case let .bytes(count) = dtype.sizing(forShape: shape) else { throw SafeTensorsError.invalidTensor(tensor: tensor, reason: "") }
            try writer.add(tensor, RawTensor(dtype: dtype, shape: shape, bytes: Array(repeating: 0, count: count)))
        }
        try writer.write(to: folder + "/" + name)
        return folder + "/" + name
    }

    func writeText(_ name: String, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: folder + "/" + name))
    }

    func detect(_ name: String? = nil) throws -> CheckpointFormat {
        try detectCheckpointFormat(SafeTensorsCheckpoint(path: name.map { folder + "/" + $0 } ?? folder))
    }

    deinit {
        try? FileManager.default.removeItem(atPath: folder)
    }
}

/// The tensors of one SVDQuant W4A4 linear (N outputs, K inputs) under Nunchaku's C++ or Python names.
private func w4a4Layer(_ prefix: String, n: Int = 256, k: Int = 128, rank: Int = 32, nvfp4: Bool = false,
                       pythonNames: Bool = false) -> [(String, SafeTensorsDType, [Int])] {
    var tensors: [(String, SafeTensorsDType, [Int])] = [
        ("\(prefix).qweight", .i8, [n, k / 2]),
        ("\(prefix).wscales", nvfp4 ? .f8e4m3 : .bf16, [k / (nvfp4 ? 16 : 64), n]),
        ("\(prefix).bias", .bf16, [n]),
        ("\(prefix).\(pythonNames ? "smooth_factor" : "smooth")", .bf16, [k]),
        ("\(prefix).\(pythonNames ? "proj_down" : "lora_down")", .bf16, [k, rank]),
        ("\(prefix).\(pythonNames ? "proj_up" : "lora_up")", .bf16, [n, rank]),
    ]
    if nvfp4 { tensors.append(("\(prefix).wcscales", .bf16, [n])) }
    return tensors
}

/// An AWQ W4A16 linear (adaLN modulation): also `qweight` + `wscales`, plus `wzeros`.
private func awqLayer(_ prefix: String, n: Int = 256, k: Int = 128) -> [(String, SafeTensorsDType, [Int])] {
    [("\(prefix).qweight", .i32, [n / 4, k / 2]), ("\(prefix).wscales", .bf16, [k / 64, n]),
     ("\(prefix).wzeros", .bf16, [k / 64, n]), ("\(prefix).bias", .bf16, [n])]
}

private let int4Config = #"{"method": "svdquant", "weight": {"dtype": "int4", "scale_dtype": null, "group_size": 64}, "activation": {"dtype": "int4", "scale_dtype": null, "group_size": 64}, "rank": 32}"#
private let nvfp4Config = #"{"method": "svdquant", "weight": {"dtype": "fp4_e2m1_all", "scale_dtype": [null, "fp8_e4m3_nan"], "group_size": 16}, "activation": {"dtype": "fp4_e2m1_all", "scale_dtype": "fp8_e4m3_nan", "group_size": 16}, "rank": 32}"#

private func blocks(nvfp4: Bool = false, rank: Int = 32) -> [(String, SafeTensorsDType, [Int])] {
    awqLayer("transformer_blocks.0.norm1.linear") + w4a4Layer("transformer_blocks.0.qkv_proj", rank: rank, nvfp4: nvfp4)
        + w4a4Layer("transformer_blocks.0.mlp_fc2", rank: rank, nvfp4: nvfp4) + [("transformer_blocks.0.norm_q.weight", .bf16, [128])]
}

private let unquantized: [(String, SafeTensorsDType, [Int])] = [("x_embedder.weight", .bf16, [3072, 64]), ("proj_out.bias", .bf16, [64])]

@Test func detectsNunchakuMergedFilesFromTheirMetadata() throws {
    let fixture = try Fixture()
    let metadata = ["config": #"{"_class_name": "FluxTransformer2DModel"}"#, "model_class": "NunchakuFluxTransformer2dModel",
                    "quantization_config": int4Config, "comfy_config": "{}"]
    try fixture.write("svdq-int4_r32-flux.safetensors", blocks() + unquantized, metadata: metadata)
    let format = try fixture.detect("svdq-int4_r32-flux.safetensors")
    #expect(format == .nunchakuMerged(SVDQuantParameters(precision: .int4, groupSize: 64, rank: 32), modelClass: "NunchakuFluxTransformer2dModel"))
    #expect(format.reportFields == [
        ReportField("format", "Nunchaku SVDQuant merged file"),
        ReportField("quantization", "int4, group size 64, rank 32"),
        ReportField("model class", "NunchakuFluxTransformer2dModel"),
    ])
    #expect(format.jsonValue["precision"] == .string("int4"))
    #expect(format.jsonValue["group_size"] == .integer(64))
    #expect(format.jsonValue["kind"] == .string("nunchaku_merged"))

    try fixture.write("fp4.safetensors", blocks(nvfp4: true) + unquantized, metadata: ["quantization_config": nvfp4Config])
    #expect(try fixture.detect("fp4.safetensors") == .nunchakuMerged(SVDQuantParameters(precision: .nvfp4, groupSize: 16, rank: 32), modelClass: nil))
}

@Test func fillsMissingConfigFieldsFromTheTensors() throws {
    let fixture = try Fixture()
    try fixture.write("m.safetensors", blocks(nvfp4: true, rank: 16), metadata: ["quantization_config": #"{"method": "svdquant"}"#])
    let format = try fixture.detect("m.safetensors")
    let inferred = SVDQuantParameters(precision: .nvfp4, groupSize: 16, rank: 16, inferredFields: ["precision", "group size", "rank"])
    #expect(format == .nunchakuMerged(inferred, modelClass: nil))
    #expect(format.reportFields[1] == ReportField("quantization", "nvfp4, group size 16, rank 16 (precision, group size, rank inferred from tensors)"))
}

@Test func rejectsMalformedQuantizationConfigs() throws {
    let fixture = try Fixture()
    try fixture.write("bad.safetensors", blocks(), metadata: ["quantization_config": "{not json"])
    #expect(throws: CheckpointFormatError.self) { try fixture.detect("bad.safetensors") }
    try fixture.write("dtype.safetensors", blocks(), metadata: ["quantization_config": #"{"weight": {"dtype": "int3"}}"#])
    #expect(throws: CheckpointFormatError.invalidQuantizationConfig(
        source: fixture.folder + "/dtype.safetensors metadata", reason: "unknown weight dtype \"int3\"")) { try fixture.detect("dtype.safetensors") }
    try fixture.write("rank.safetensors", blocks(), metadata: ["quantization_config": #"{"rank": "32"}"#])
    #expect(throws: CheckpointFormatError.invalidQuantizationConfig(
        source: fixture.folder + "/rank.safetensors metadata", reason: "rank must be a non-negative integer")) { try fixture.detect("rank.safetensors") }
}

@Test func detectsTheCanonicalLayout() throws {
    let fixture = try Fixture()
    try fixture.write("c.safetensors", blocks(), metadata: ["nunchaku_layout": "canonical", "quantization_config": int4Config, "model_class": "Flux"])
    #expect(try fixture.detect("c.safetensors") == .canonicalSVDQuant(SVDQuantParameters(precision: .int4, groupSize: 64, rank: 32), modelClass: "Flux"))
    // `nunchaku convert --to dense` output: dequantized weights with the model's config.
    try fixture.write("d.safetensors", unquantized, metadata: ["nunchaku_layout": "dense", "config": #"{"_class_name": "FluxTransformer2DModel"}"#])
    #expect(try fixture.detect("d.safetensors") == .dense(dtype: .bf16, diffusersClass: "FluxTransformer2DModel"))
    try fixture.write("u.safetensors", blocks(), metadata: ["nunchaku_layout": "tiled"])
    #expect(throws: CheckpointFormatError.unknownLayout(file: fixture.folder + "/u.safetensors", layout: "tiled")) { try fixture.detect("u.safetensors") }
}

@Test func detectsTheLegacyFolderAndItsFilesAlone() throws {
    let fixture = try Fixture()
    try fixture.write("transformer_blocks.safetensors", blocks(rank: 48))
    try fixture.write("unquantized_layers.safetensors", unquantized)
    try fixture.writeText("config.json", #"{"_class_name": "FluxTransformer2DModel"}"#)
    let inferred = SVDQuantParameters(precision: .int4, groupSize: 64, rank: 48, inferredFields: ["precision", "group size", "rank"])
    #expect(try fixture.detect() == .nunchakuLegacyFolder(inferred))
    #expect(try fixture.detect("transformer_blocks.safetensors") == .svdquantTensors(inferred))
    #expect(try fixture.detect("unquantized_layers.safetensors") == .dense(dtype: .bf16, diffusersClass: nil))
}

@Test func detectsNunchakuLiteFoldersFromConfigJSON() throws {
    let fixture = try Fixture()
    try fixture.write("diffusion_pytorch_model.safetensors",
                      w4a4Layer("layers.0.attn.to_q", nvfp4: true, pythonNames: true) + [("layers.0.norm.weight", .bf16, [128])])
    try fixture.writeText("config.json", #"""
        {"_class_name": "ErnieImageTransformer2DModel", "_diffusers_version": "0.38.0",
         "quantization_config": {"quant_method": "nunchaku_lite", "compute_dtype": "bfloat16",
           "svdq_w4a4": {"precision": "nvfp4", "group_size": 16, "rank": 32, "targets": ["layers.0.attn.to_q"]}}}
        """#)
    let format = try fixture.detect()
    #expect(format == .nunchakuLite(SVDQuantParameters(precision: .nvfp4, groupSize: 16, rank: 32), diffusersClass: "ErnieImageTransformer2DModel"))
    #expect(format.modelClass == "ErnieImageTransformer2DModel")
    // Nunchaku-Lite writes NVFP4 as "fp4".
    try fixture.writeText("config.json", #"{"quantization_config": {"quant_method": "nunchaku_lite", "svdq_w4a4": {"precision": "fp4", "group_size": 16, "rank": 32}}}"#)
    #expect(try fixture.detect() == .nunchakuLite(SVDQuantParameters(precision: .nvfp4, groupSize: 16, rank: 32), diffusersClass: nil))
    try fixture.writeText("config.json", #"{"quantization_config": {"quant_method": "nunchaku_lite", "svdq_w4a4": {"precision": "fp8"}}}"#)
    #expect(throws: CheckpointFormatError.invalidQuantizationConfig(
        source: fixture.folder + "/config.json", reason: "unknown svdq_w4a4.precision \"fp8\"")) { try fixture.detect() }
    try fixture.writeText("config.json", "{\"a\": ")
    #expect(throws: CheckpointFormatError.self) { try fixture.detect() }
}

@Test(arguments: [
    ("transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight", LoRANaming.peft),
    ("lora_unet_double_blocks_0_img_attn_proj.lora_down.weight", .downUp),
    ("diffusion_model.double_blocks.0.img_attn.proj.lora_up.weight", .downUp),
    ("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.lora.down.weight", .dottedDownUp),
    ("double_blocks.0.processor.proj_lora1.down.weight", .xlabs),
    ("lora_unet_input_blocks_1_1_proj_in.hada_w1_a", .lycoris),
])
func detectsLoRANamingFamilies(name: String, naming: LoRANaming) throws {
    let fixture = try Fixture()
    try fixture.write("lora.safetensors", [(name, .bf16, [4, 64]), ("other.alpha", .f32, [])])
    let format = try fixture.detect("lora.safetensors")
    #expect(format == .lora(naming))
    #expect(format.title == "LoRA, \(naming.rawValue) naming")
}

@Test func detectsDenseModels() throws {
    let fixture = try Fixture()
    try fixture.write("diffusion_pytorch_model.safetensors", [("a.weight", .bf16, [64, 64]), ("b.weight", .f32, [8])])
    try fixture.writeText("config.json", #"{"_class_name": "FluxTransformer2DModel", "_diffusers_version": "0.30.0"}"#)
    let folderFormat = try fixture.detect()
    #expect(folderFormat == .dense(dtype: .bf16, diffusersClass: "FluxTransformer2DModel"))
    #expect(folderFormat.title == "BF16 diffusers model")
    #expect(try fixture.detect("diffusion_pytorch_model.safetensors") == .dense(dtype: .bf16, diffusersClass: nil))
    try fixture.write("empty.safetensors", [])
    #expect(try fixture.detect("empty.safetensors") == .unrecognized)
    try fixture.write("ints.safetensors", [("ids", .i64, [4])])
    #expect(try fixture.detect("ints.safetensors") == .unrecognized)
}
