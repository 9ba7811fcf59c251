import CPUBackend
import Foundation
import NunchakuCore
import SafeTensors

/// Activation outlier channels put into a diffusers FLUX transformer by an exact reparameterization, so that
/// quantizers can be compared on a model that has them (`nunchaku eval --outlier-factor`, docs/demo.md).
///
/// Large, long-trained transformers carry a few activation channels far larger than the rest — the outliers
/// SVDQuant's smoothing and low-rank branch exist for — while a small model trained for minutes has none (the demo
/// model's largest input channel is at most 5.4× the median one in every quantized layer). For each chosen
/// channel `c` and factor `α` (a power of two), in every block:
/// - each adaLN modulation that feeds quantized layers gets its shift row `c` multiplied by `α` and its scale row
///   `c` rewritten so that `1 + scale′ = α·(1 + scale)` (weights `α·w`, bias `α·b + α − 1`): the modulated norm
///   output's channel `c` is `α` times larger;
/// - each linear that reads that output has its input column `c` divided by `α`;
/// - v's output row `c` (weight and bias) is multiplied by `α` in both streams (attention is linear in v, and the
///   text and image tokens share the same attention) and the attention output projections' input column `c` is
///   divided by `α`.
///
/// Scaling by a power of two is exact in BF16, so the only rounding is in the rewritten scale biases: the model
/// computes the same function (checked by `OutlierChannelsTests` with the CPU forward), while per-64-group
/// activation quantization without smoothing now sees, in the groups holding `c`, one channel `α` times the rest.
public struct OutlierChannels: Sendable, Codable, Equatable {
    /// How much larger the chosen channels become: a power of two from 2 to 2¹⁶.
    public let factor: Float
    /// The chosen channels of the model width, ascending.
    public let channels: [Int]

    /// - Throws: `NunchakuError.invalidArgument` for a factor that is not a power of two in 2…65536, or channels
    ///   that are empty or repeated.
    public init(factor: Float, channels: [Int]) throws {
        guard factor >= 2, factor <= 65536, factor.significandBitPattern == 0 else {
            throw NunchakuError.invalidArgument(
                context: "outlier factor", reason: "\(factor) must be a power of two from 2 to 65536 (so the rescaling is exact in BF16)")
        }
        guard !channels.isEmpty, Set(channels).count == channels.count, channels.allSatisfy({ $0 >= 0 }) else {
            throw NunchakuError.invalidArgument(context: "outlier channels", reason: "\(channels) must be distinct, non-negative and not empty")
        }
        self.factor = factor
        self.channels = channels.sorted()
    }

    /// "channels 64, 192 × 16", for reports.
    public var summary: String {
        "channel\(channels.count == 1 ? "" : "s") \(channels.map(String.init).joined(separator: ", ")) × \(Int(factor))"
    }

    /// `count` channels spread evenly over `width`: channel `i·width/count + width/(2·count)` for i = 0…count−1
    /// (the middle of equal slices, so no two share a 64-group while count ≤ width/64).
    public static func spread(count: Int, width: Int) throws -> [Int] {
        guard count >= 1, count <= width else {
            throw NunchakuError.invalidArgument(context: "outlier channel count", reason: "\(count) must be from 1 to the model width \(width)")
        }
        return (0..<count).map { $0 * width / count + width / (2 * count) }
    }

    /// The tensors of `model` this changes, by name, in their checkpoint dtype.
    /// - Throws: `NunchakuError.invalidArgument` for a channel outside the model width; the checkpoint's read errors.
    public func changedTensors(of model: FluxSourceModel) throws -> [String: Tensor] {
        let width = model.config.innerDim
        if let bad = channels.first(where: { $0 >= width }) {
            throw NunchakuError.invalidArgument(context: "outlier channel \(bad)", reason: "the model width is \(width)")
        }
        var edits = TensorEdits(model: model, width: width)
        for index in 0..<model.config.numLayers {
            let p = "transformer_blocks.\(index)"
            for stream in [("norm1", ["to_q", "to_k", "to_v"], "ff.net.0.proj"),
                           ("norm1_context", ["add_q_proj", "add_k_proj", "add_v_proj"], "ff_context.net.0.proj")] {
                try amplifyModulatedNorm("\(p).\(stream.0).linear", shiftChunk: 0, consumers: stream.1.map { "\(p).attn.\($0)" }, &edits)
                try amplifyModulatedNorm("\(p).\(stream.0).linear", shiftChunk: 3, consumers: ["\(p).\(stream.2)"], &edits)
            }
            try amplifyValues(["\(p).attn.to_v", "\(p).attn.add_v_proj"], readers: ["\(p).attn.to_out.0", "\(p).attn.to_add_out"], &edits)
        }
        for index in 0..<model.config.numSingleLayers {
            let p = "single_transformer_blocks.\(index)"
            try amplifyModulatedNorm("\(p).norm.linear", shiftChunk: 0,
                                     consumers: ["to_q", "to_k", "to_v"].map { "\(p).attn.\($0)" } + ["\(p).proj_mlp"], &edits)
            // proj_out reads [attention ‖ mlp]: the attention part is its first `width` columns.
            try amplifyValues(["\(p).attn.to_v"], readers: ["\(p).proj_out"], &edits)
        }
        return try edits.tensors()
    }

    /// Writes `model` with the outlier channels as a diffusers transformer folder (`config.json` and
    /// `diffusion_pytorch_model.safetensors`, the other tensors copied unchanged).
    /// - Throws: as `changedTensors(of:)`; file errors naming the path.
    public func write(_ model: FluxSourceModel, to folder: String) throws {
        let changed = try changedTensors(of: model)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let configPath = (folder as NSString).appendingPathComponent("config.json")
        guard FileManager.default.createFile(atPath: configPath, contents: Data(model.configText.utf8)) else {
            throw NunchakuError.io(path: configPath, reason: "cannot be written")
        }
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        for name in model.weights.tensorNames {
            try writer.add(name, try changed[name] ?? model.weights.tensor(name))
        }
        try writer.write(to: (folder as NSString).appendingPathComponent("diffusion_pytorch_model.safetensors"))
    }

    /// Channel c of `LN(x)·(1 + scale) + shift` becomes α times larger (rows of the modulation `linear`, whose
    /// chunks are [shift, scale, …] from `shiftChunk`); `consumers` take column c divided by α.
    private func amplifyModulatedNorm(_ linear: String, shiftChunk: Int, consumers: [String], _ edits: inout TensorEdits) throws {
        for c in channels {
            let shiftRow = shiftChunk * edits.width + c, scaleRow = (shiftChunk + 1) * edits.width + c
            try edits.scaleRow(of: linear, shiftRow, by: factor)
            try edits.scaleRow(of: linear, scaleRow, by: factor, biasOffset: factor - 1)
            for consumer in consumers { try edits.scaleColumn(of: consumer, c, by: 1 / factor) }
        }
    }

    /// Channel c of v (every stream's projection, since the joint attention mixes them) becomes α times larger;
    /// `readers` of the attention output take column c divided by α.
    private func amplifyValues(_ projections: [String], readers: [String], _ edits: inout TensorEdits) throws {
        for c in channels {
            for projection in projections { try edits.scaleRow(of: projection, c, by: factor) }
            for reader in readers { try edits.scaleColumn(of: reader, c, by: 1 / factor) }
        }
    }
}

/// Linear layers' weights and biases read as `Float`s on first use, edited, and converted back to their dtype.
private struct TensorEdits {
    let model: FluxSourceModel
    let width: Int
    private var values: [String: (floats: [Float], shape: [Int], dtype: DType)] = [:]

    init(model: FluxSourceModel, width: Int) {
        self.model = model
        self.width = width
    }

    /// `weight[row, :] *= factor`, `bias[row] = bias[row]·factor + biasOffset`.
    mutating func scaleRow(of linear: String, _ row: Int, by factor: Float, biasOffset: Float = 0) throws {
        let weight = try load("\(linear).weight"), columns = weight.shape[1]
        for index in (row * columns)..<((row + 1) * columns) { values["\(linear).weight"]!.floats[index] *= factor }
        _ = try load("\(linear).bias")
        values["\(linear).bias"]!.floats[row] = values["\(linear).bias"]!.floats[row] * factor + biasOffset
    }

    /// `weight[:, column] *= factor`.
    mutating func scaleColumn(of linear: String, _ column: Int, by factor: Float) throws {
        let weight = try load("\(linear).weight"), (rows, columns) = (weight.shape[0], weight.shape[1])
        for row in 0..<rows { values["\(linear).weight"]!.floats[row * columns + column] *= factor }
    }

    func tensors() throws -> [String: Tensor] {
        values.mapValues { Tensor($0.floats, shape: $0.shape).converted(to: $0.dtype) }
    }

    private mutating func load(_ name: String) throws -> (floats: [Float], shape: [Int], dtype: DType) {
        if let loaded = values[name] { return loaded }
        let tensor = try model.weights.tensor(name)
        let loaded = (floats: try tensor.floatValues(context: name), shape: tensor.shape, dtype: tensor.dtype)
        values[name] = loaded
        return loaded
    }
}
