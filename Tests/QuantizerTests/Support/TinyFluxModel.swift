import Foundation
import CPUBackend
import NunchakuCore
import SafeTensors
@testable import Quantizer

/// A small random-weight diffusers FLUX transformer written to a temporary folder: `transformer/config.json` and a
/// BF16 `diffusion_pytorch_model.safetensors`, plus forward-input files. Width 128 (2 heads of 64), one double and
/// one single block by default; weights Gaussian with std 1/√fan_in, and a few embedding channels 8× larger so that
/// the blocks see activation outliers for the smoothing to move.
struct TinyFluxModel {
    let folder: String
    let heads: Int
    let headDimension: Int
    let doubleBlocks: Int
    let singleBlocks: Int
    static let inChannels = 16, jointDimension = 32, pooledDimension = 32

    var width: Int { heads * headDimension }
    var transformerFolder: String { folder + "/transformer" }

    init(heads: Int = 2, headDimension: Int = 64, doubleBlocks: Int = 1, singleBlocks: Int = 1, seed: UInt64 = 11,
         configOverrides: [String: String] = [:], extraTensors: [String: Tensor] = [:], dropTensors: Set<String> = []) throws {
        folder = NSTemporaryDirectory() + "tiny-flux-\(UUID().uuidString)"
        self.heads = heads
        self.headDimension = headDimension
        self.doubleBlocks = doubleBlocks
        self.singleBlocks = singleBlocks
        try FileManager.default.createDirectory(atPath: transformerFolder, withIntermediateDirectories: true)
        try Data(configText(overrides: configOverrides).utf8).write(to: URL(fileURLWithPath: transformerFolder + "/config.json"))
        var writer = SafeTensorsWriter()
        var random = SeededGaussian(seed: seed)
        for (name, shape) in tensorShapes() where !dropTensors.contains(name) {
            try writer.add(name, Self.randomTensor(name: name, shape: shape, &random))
        }
        for (name, tensor) in extraTensors { try writer.add(name, tensor) }
        try writer.write(to: transformerFolder + "/diffusion_pytorch_model.safetensors")
    }

    /// The diffusers config, with `overrides` (JSON values) replacing or adding keys.
    func configText(overrides: [String: String] = [:]) -> String {
        let axes = headDimension == 64 ? "[8, 28, 28]" : "[4, 14, 14]"
        var entries: [(String, String)] = [
            ("_class_name", "\"FluxTransformer2DModel\""), ("attention_head_dim", "\(headDimension)"),
            ("axes_dims_rope", axes), ("guidance_embeds", "true"), ("in_channels", "\(Self.inChannels)"),
            ("joint_attention_dim", "\(Self.jointDimension)"), ("num_attention_heads", "\(heads)"),
            ("num_layers", "\(doubleBlocks)"), ("num_single_layers", "\(singleBlocks)"), ("out_channels", "null"),
            ("patch_size", "1"), ("pooled_projection_dim", "\(Self.pooledDimension)"),
        ]
        for (key, value) in overrides {
            if let index = entries.firstIndex(where: { $0.0 == key }) { entries[index].1 = value } else { entries.append((key, value)) }
        }
        return "{\n" + entries.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }

    /// Every tensor of a diffusers FluxTransformer2DModel of this size, with its shape.
    func tensorShapes() -> [(String, [Int])] {
        let d = width, h = 4 * width
        var shapes: [(String, [Int])] = []
        func linear(_ name: String, _ k: Int, _ n: Int) { shapes += [("\(name).weight", [n, k]), ("\(name).bias", [n])] }
        linear("x_embedder", Self.inChannels, d)
        linear("context_embedder", Self.jointDimension, d)
        for embedder in ["timestep_embedder", "guidance_embedder"] {
            linear("time_text_embed.\(embedder).linear_1", 256, d)
            linear("time_text_embed.\(embedder).linear_2", d, d)
        }
        linear("time_text_embed.text_embedder.linear_1", Self.pooledDimension, d)
        linear("time_text_embed.text_embedder.linear_2", d, d)
        for index in 0..<doubleBlocks {
            let p = "transformer_blocks.\(index)"
            linear("\(p).norm1.linear", d, 6 * d)
            linear("\(p).norm1_context.linear", d, 6 * d)
            for name in ["to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out"] {
                linear("\(p).attn.\(name)", d, d)
            }
            for norm in ["norm_q", "norm_k", "norm_added_q", "norm_added_k"] { shapes.append(("\(p).attn.\(norm).weight", [headDimension])) }
            for stream in ["ff", "ff_context"] {
                linear("\(p).\(stream).net.0.proj", d, h)
                linear("\(p).\(stream).net.2", h, d)
            }
        }
        for index in 0..<singleBlocks {
            let p = "single_transformer_blocks.\(index)"
            linear("\(p).norm.linear", d, 3 * d)
            for name in ["to_q", "to_k", "to_v"] { linear("\(p).attn.\(name)", d, d) }
            for norm in ["norm_q", "norm_k"] { shapes.append(("\(p).attn.\(norm).weight", [headDimension])) }
            linear("\(p).proj_mlp", d, h)
            linear("\(p).proj_out", d + h, d)
        }
        linear("norm_out.linear", d, 2 * d)
        linear("proj_out", d, Self.inChannels)
        return shapes
    }

    /// Forward inputs for this model (one sample, 16 image and 8 text tokens), as a file; returns its path.
    func writeInputs(name: String, seed: UInt64, timestep: Float) throws -> String {
        var random = SeededGaussian(seed: seed)
        let imageTokens = 16, textTokens = 8
        let imageIDs: [Float] = (0..<imageTokens).flatMap { [0, Float($0 / 4), Float($0 % 4)] }
        let tensors: [String: Tensor] = [
            "hidden_states": Tensor(random.floats(imageTokens * Self.inChannels), shape: [1, imageTokens, Self.inChannels]),
            "encoder_hidden_states": Tensor(random.floats(textTokens * Self.jointDimension), shape: [1, textTokens, Self.jointDimension]),
            "pooled_projections": Tensor(random.floats(Self.pooledDimension), shape: [1, Self.pooledDimension]),
            "timestep": Tensor([timestep], shape: [1]),
            "guidance": Tensor([3.5], shape: [1]),
            "img_ids": Tensor(imageIDs, shape: [imageTokens, 3]),
            "txt_ids": Tensor([Float](repeating: 0, count: textTokens * 3), shape: [textTokens, 3]),
        ]
        var writer = SafeTensorsWriter()
        for (key, tensor) in tensors { try writer.add(key, tensor) }
        let path = folder + "/\(name).safetensors"
        try writer.write(to: path)
        return path
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private static func randomTensor(name: String, shape: [Int], _ random: inout SeededGaussian) -> Tensor {
        var values: [Float]
        if shape.count == 1 {
            values = name.contains(".norm_") ? random.floats(shape[0], scale: 0.1).map { 1 + $0 } : random.floats(shape[0], scale: 0.05)
        } else {
            let (n, k) = (shape[0], shape[1])
            values = random.floats(n * k, scale: 1 / Float(k).squareRoot())
            // A few outlier channels in the token streams, as real diffusion transformers have: they reach every
            // block's inputs through the residual stream.
            if name == "x_embedder.weight" || name == "context_embedder.weight" {
                for row in stride(from: 5, to: n, by: 29) {
                    for column in 0..<k { values[row * k + column] *= 8 }
                }
            }
        }
        return Tensor.rounding(values, shape: shape, to: .bf16)
    }
}
