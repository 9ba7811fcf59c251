import Foundation
import NunchakuCore
import SafeTensors
@testable import SVDQuant

/// A folder under the system's temporary directory, deleted with the object.
final class ScratchFolder {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("svdquant-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A small SVDQuant model with random weights, writable in every checkpoint format. The FLUX variant has one double
/// and one single block of width 128 (research/nunchaku-internals.md §1.4 with D = 128); the generic variant is
/// Z-Image-like (Python names, no AWQ layer). File names are spelled out here, independently of the loader's tables.
struct SyntheticModel {
    enum Family { case flux, generic }

    /// A W4A4 layer: C++ (engine) name, Python module name, canonical tensors with natural vector order.
    struct W4A4Layer {
        let name: String
        let pythonName: String
        var tensors: SVDQW4A4Tensors
    }

    /// An AWQ layer with canonical (u8 code) tensors.
    struct AWQLayer {
        let name: String
        var tensors: AWQW4A16Tensors
    }

    struct DenseTensor {
        let name: String
        let pythonName: String
        let tensor: Tensor
    }

    let family: Family
    let precision: SVDQuantPrecision
    let rank: Int
    var w4a4: [W4A4Layer] = []
    var awq: [AWQLayer] = []
    var dense: [DenseTensor] = []

    static let fluxW4A4: [(String, String, Int, Int)] = [  // C++ name, Python name, K/128, N/128
        ("transformer_blocks.0.qkv_proj", "transformer_blocks.0.attn.to_qkv", 1, 3),
        ("transformer_blocks.0.qkv_proj_context", "transformer_blocks.0.attn.add_qkv_proj", 1, 3),
        ("transformer_blocks.0.out_proj", "transformer_blocks.0.attn.to_out.0", 1, 1),
        ("transformer_blocks.0.out_proj_context", "transformer_blocks.0.attn.to_add_out", 1, 1),
        ("transformer_blocks.0.mlp_fc1", "transformer_blocks.0.ff.net.0.proj", 1, 4),
        ("transformer_blocks.0.mlp_fc2", "transformer_blocks.0.ff.net.2", 4, 1),
        ("transformer_blocks.0.mlp_context_fc1", "transformer_blocks.0.ff_context.net.0.proj", 1, 4),
        ("transformer_blocks.0.mlp_context_fc2", "transformer_blocks.0.ff_context.net.2", 4, 1),
        ("single_transformer_blocks.0.qkv_proj", "single_transformer_blocks.0.attn.to_qkv", 1, 3),
        ("single_transformer_blocks.0.mlp_fc1", "single_transformer_blocks.0.mlp_fc1", 1, 4),
        ("single_transformer_blocks.0.out_proj", "single_transformer_blocks.0.attn.to_out", 1, 1),
        ("single_transformer_blocks.0.mlp_fc2", "single_transformer_blocks.0.mlp_fc2", 4, 1),
    ]
    static let genericW4A4: [(String, String, Int, Int)] = [
        ("layers.0.attention.to_qkv", "layers.0.attention.to_qkv", 1, 3),
        ("layers.0.attention.to_out.0", "layers.0.attention.to_out.0", 1, 1),
        ("layers.0.feed_forward.net.2", "layers.0.feed_forward.net.2", 2, 1),
    ]

    /// Random weights; NVFP4 layers get `wcscales` (every third) and `wtscale` (every third, shifted by one).
    init(family: Family = .flux, precision: SVDQuantPrecision = .int4, rank: Int = 16, seed: UInt64 = 1) {
        self.family = family
        self.precision = precision
        self.rank = rank
        var rng = SeededGenerator(seed: seed)
        for (index, (name, pythonName, kTiles, nTiles)) in (family == .flux ? Self.fluxW4A4 : Self.genericW4A4).enumerated() {
            var options = W4A4Fixtures.Options()
            options.precision = precision
            (options.n, options.k, options.rank) = (128 * nTiles, 128 * kTiles, rank)
            options.channelScales = precision == .nvfp4 && index % 3 == 0
            options.wtscale = precision == .nvfp4 && index % 3 == 1 ? 0.75 : nil
            var tensors = W4A4Fixtures.tensors(options, &rng)
            tensors.smoothOrig = halfTensor(randomValues(options.k, in: 0.5...2, .bf16, &rng), [options.k], .bf16)
            w4a4.append(W4A4Layer(name: name, pythonName: pythonName, tensors: tensors))
        }
        guard family == .flux else {
            dense = [DenseTensor(name: "x_embedder.weight", pythonName: "x_embedder.weight", tensor: randomFiniteHalfBits([128, 64], .bf16, &rng))]
            return
        }
        for (name, chunks) in [("transformer_blocks.0.norm1.linear", 6), ("transformer_blocks.0.norm1_context.linear", 6),
                               ("single_transformer_blocks.0.norm.linear", 3)] {
            let n = 128 * chunks, k = 128
            awq.append(AWQLayer(name: name, tensors: AWQW4A16Tensors(
                qweight: bytesTensor(Self.randomBytes(n * k / 2, &rng), [n, k / 2], .u8),
                wscales: halfTensor(randomValues(2 * n, in: 0.001...0.02, .bf16, &rng), [2, n], .bf16),
                wzeros: halfTensor(randomValues(2 * n, in: -0.2...0, .bf16, &rng), [2, n], .bf16),
                bias: halfTensor(randomValues(n, in: -1...1, .bf16, &rng), [n], .bf16))))
        }
        for (name, pythonName, shape) in [
            ("x_embedder.weight", "x_embedder.weight", [128, 64]), ("x_embedder.bias", "x_embedder.bias", [128]),
            ("proj_out.weight", "proj_out.weight", [64, 128]),
            ("transformer_blocks.0.norm_added_q.weight", "transformer_blocks.0.attn.norm_added_q.weight", [128]),
            ("single_transformer_blocks.0.norm_k.weight", "single_transformer_blocks.0.attn.norm_k.weight", [128]),
        ] {
            dense.append(DenseTensor(name: name, pythonName: pythonName, tensor: randomFiniteHalfBits(shape, .bf16, &rng)))
        }
    }

    /// Random bytes, eight per generator step (the per-byte helper is slow in debug builds).
    static func randomBytes(_ count: Int, _ rng: inout SeededGenerator) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(count + 8)
        while bytes.count < count { withUnsafeBytes(of: rng.next()) { bytes.append(contentsOf: $0) } }
        return Array(bytes.prefix(count))
    }

    // MARK: Names and configs

    static let cppParameters = ["qweight", "wscales", "wtscale", "wcscales", "bias", "smooth", "smooth_orig", "lora_down", "lora_up"]
    static let pythonParameters = ["qweight", "wscales", "wtscale", "wcscales", "bias", "smooth_factor", "smooth_factor_orig", "proj_down", "proj_up"]

    var config: String {
        let className = family == .flux ? "FluxTransformer2DModel" : "ZImageTransformer2DModel"
        return #"{"_class_name": "\#(className)", "num_layers": 1}"#
    }

    var quantizationConfig: String {
        precision == .int4
            ? #"{"method": "svdquant", "weight": {"dtype": "int4", "scale_dtype": null, "group_size": 64}, "activation": {"dtype": "int4", "scale_dtype": null, "group_size": 64}, "rank": \#(rank)}"#
            : #"{"method": "svdquant", "weight": {"dtype": "fp4_e2m1_all", "scale_dtype": [null, "fp8_e4m3_nan"], "group_size": 16}, "activation": {"dtype": "fp4_e2m1_all", "scale_dtype": "fp8_e4m3_nan", "group_size": 16}, "rank": \#(rank)}"#
    }

    var modelClass: String { family == .flux ? "NunchakuFluxTransformer2dModel" : "NunchakuZImageTransformer2DModel" }

    var mergedMetadata: [String: String] {
        ["config": config, "model_class": modelClass, "quantization_config": quantizationConfig, "comfy_config": #"{"model_class": "Flux"}"#]
    }

    // MARK: Tensor sets

    /// Every tensor in Nunchaku's packed layout. `pythonModules`: FLUX Python block names; `pythonParameters`:
    /// smooth_factor/proj_down…; `lite`: Nunchaku-Lite's parameter set (no smooth_factor_orig; NVFP4 always has
    /// wcscales and wtscale).
    func nunchakuTensors(pythonModules: Bool, pythonParameters: Bool, lite: Bool = false) throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        let parameters = pythonParameters ? Self.pythonParameters : Self.cppParameters
        for layer in w4a4 {
            var packed = try SVDQW4A4Weights(name: layer.name, tensors: layer.tensors, layout: .canonical(vectorOrder: .natural))
                .tensors(layout: .nunchaku)
            if lite {
                packed.smoothOrig = nil
                if precision == .nvfp4 {
                    let n = packed.qweight.shape[0]
                    packed.wcscales = packed.wcscales ?? halfTensor(Array(repeating: 1, count: n), [n], .bf16)
                    packed.wtscale = packed.wtscale ?? halfTensor([1], [1], .bf16)
                }
            }
            Self.add(packed, prefix: pythonModules ? layer.pythonName : layer.name, parameters: parameters, into: &result)
        }
        for layer in awq {
            let packed = try AWQW4A16Weights(name: layer.name, tensors: layer.tensors, layout: .canonical).tensors(layout: .nunchaku)
            Self.add(packed, prefix: layer.name, into: &result)
        }
        for tensor in dense { result[pythonModules ? tensor.pythonName : tensor.name] = tensor.tensor }
        return result
    }

    /// Every tensor in the canonical layout (C++ names for FLUX) with the given vector order.
    func canonicalTensors(vectorOrder: ChannelVectorOrder) throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for layer in w4a4 {
            let tensors = try SVDQW4A4Weights(name: layer.name, tensors: layer.tensors, layout: .canonical(vectorOrder: .natural))
                .tensors(layout: .canonical(vectorOrder: vectorOrder))
            Self.add(tensors, prefix: layer.name, parameters: family == .flux ? Self.cppParameters : Self.pythonParameters, into: &result)
        }
        for layer in awq { Self.add(layer.tensors, prefix: layer.name, into: &result) }
        for tensor in dense { result[tensor.name] = tensor.tensor }
        return result
    }

    private static func add(_ tensors: SVDQW4A4Tensors, prefix: String, parameters: [String], into result: inout [String: Tensor]) {
        let values: [Tensor?] = [tensors.qweight, tensors.wscales, tensors.wtscale, tensors.wcscales, tensors.bias, tensors.smooth,
                                 tensors.smoothOrig, tensors.projDown, tensors.projUp]
        for (parameter, tensor) in zip(parameters, values) { result["\(prefix).\(parameter)"] = tensor }
    }

    private static func add(_ tensors: AWQW4A16Tensors, prefix: String, into result: inout [String: Tensor]) {
        for (parameter, tensor) in [("qweight", tensors.qweight), ("wscales", tensors.wscales), ("wzeros", tensors.wzeros), ("bias", tensors.bias)] {
            result["\(prefix).\(parameter)"] = tensor
        }
    }

    // MARK: Writers

    static func write(_ tensors: [String: Tensor], to path: String, metadata: [String: String]?) throws {
        var writer = SafeTensorsWriter(metadata: metadata)
        for (name, tensor) in tensors { try writer.add(name, tensor) }
        try writer.write(to: path)
    }

    /// A Nunchaku merged single file.
    func writeMerged(to path: String, pythonModules: Bool = false, pythonParameters: Bool? = nil) throws {
        let python = pythonParameters ?? (family == .generic)
        try Self.write(nunchakuTensors(pythonModules: pythonModules, pythonParameters: python), to: path, metadata: mergedMetadata)
    }

    /// A Nunchaku legacy folder: block tensors, the rest, config.json and comfy_config.json.
    func writeLegacyFolder(_ folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let tensors = try nunchakuTensors(pythonModules: false, pythonParameters: family == .generic)
        let isBlock = { (name: String) in name.hasPrefix("transformer_blocks.") || name.hasPrefix("single_transformer_blocks.") }
        try Self.write(tensors.filter { isBlock($0.key) }, to: folder + "/transformer_blocks.safetensors", metadata: nil)
        try Self.write(tensors.filter { !isBlock($0.key) }, to: folder + "/unquantized_layers.safetensors", metadata: nil)
        try Data(config.utf8).write(to: URL(fileURLWithPath: folder + "/config.json"))
        try Data(mergedMetadata["comfy_config"]!.utf8).write(to: URL(fileURLWithPath: folder + "/comfy_config.json"))
    }

    /// A diffusers Nunchaku-Lite folder (Python names; config.json with the Lite quantization_config).
    func writeLiteFolder(_ folder: String, precisionName: String? = nil) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Self.write(try nunchakuTensors(pythonModules: true, pythonParameters: true, lite: true),
                       to: folder + "/diffusion_pytorch_model.safetensors", metadata: ["format": "pt"])
        let svdqTargets = w4a4.map { "\"\($0.pythonName)\"" }.joined(separator: ", ")
        let awqTargets = awq.map { "\"\($0.name)\"" }.joined(separator: ", ")
        let precisionText = precisionName ?? (precision == .int4 ? "int4" : "fp4")
        let className = family == .flux ? "FluxTransformer2DModel" : "ZImageTransformer2DModel"
        let config = """
            {"_class_name": "\(className)", "num_layers": 1, "quantization_config": {"quant_method": "nunchaku_lite", \
            "compute_dtype": "bfloat16", "svdq_w4a4": {"precision": "\(precisionText)", "group_size": \(precision.groupSize), \
            "rank": \(rank), "targets": [\(svdqTargets)]}\(awq.isEmpty ? "" : #", "awq_w4a16": {"precision": "int4", "group_size": 64, "targets": [\#(awqTargets)]}"#)}}
            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: folder + "/config.json"))
    }

    /// A canonical file with the given per-channel vector order.
    func writeCanonical(to path: String, vectorOrder: ChannelVectorOrder = .natural) throws {
        var metadata = mergedMetadata
        metadata["nunchaku_layout"] = "canonical"
        metadata["nunchaku_vector_order"] = vectorOrder.rawValue
        try Self.write(canonicalTensors(vectorOrder: vectorOrder), to: path, metadata: metadata)
    }
}

/// One tensor of a safetensors file, compared by dtype, shape and bytes.
struct StoredTensor: Equatable {
    let dtype: SafeTensorsDType
    let shape: [Int]
    let bytes: [UInt8]
}

/// Every tensor of the file (or folder) at `path`, by name.
func storedTensors(_ path: String) throws -> [String: StoredTensor] {
    let checkpoint = try SafeTensorsCheckpoint(path: path)
    var result: [String: StoredTensor] = [:]
    for name in checkpoint.tensorNames {
        let raw = try checkpoint.raw(name)
        result[name] = StoredTensor(dtype: raw.dtype, shape: raw.shape, bytes: raw.bytes)
    }
    return result
}

/// The metadata of the single safetensors file at `path`.
func storedMetadata(_ path: String) throws -> [String: String] {
    try SafeTensorsFile(path: path).metadata ?? [:]
}
