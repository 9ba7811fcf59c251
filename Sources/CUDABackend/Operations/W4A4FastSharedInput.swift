import NunchakuCore
import SVDQuant

/// Fast W4A4 layers that read the same input with the same smoothing (FLUX's single block: `qkv_proj` and
/// `mlp_fc1` on one LayerNorm output, which DeepCompressor smooths with one vector) and share one activation pass:
/// one low-rank down-projection over their `proj_down`s concatenated ([K, ΣRᵢ]), one quantize pass writing GEMM
/// rows `[t | l₀ | l₁ | … | 0]` with one per-token amax over all of them, then each layer's FP8 GEMM over the same
/// rows, its weights zero in the other layers' low-rank columns (`W4A4FastLowRankColumns`). Against separate
/// forwards this reads x twice instead of four times and quantizes it once; a row's scale is larger where another
/// layer's low-rank value is its largest (`W4A4FastReference.sharedQuantize` is the reference).
///
/// The layers are made with `lowRankColumns(sharing:type:)`'s columns; alone (`forward` of one layer, e.g. while
/// a LoRA is on it) each still runs correctly, writing zeros in the other layers' columns.
public final class CUDAW4A4FastSharedInput: Sendable {
    /// The sharing layers, in the order of their low-rank columns (and of their GEMMs in `forward`).
    public let layers: [CUDASVDQW4A4FastLinear]
    /// Steps 1 and 2 over all low-rank columns.
    let input: W4A4FastInputPass

    /// The low-rank columns for the layers of `weights` to share one activation pass in that order, or nil when
    /// they cannot: fewer than two layers, different K, a different shift (GELU-fed unsigned INT4 layers), smoothing
    /// factors that differ in `type` (compared bit for bit), ranks that are not positive multiples of 16 or add up past
    /// `W4A4FastParameters.maxRank`.
    public static func lowRankColumns(sharing weights: [SVDQW4A4Weights], type: ActivationDType) -> [W4A4FastLowRankColumns]? {
        guard let first = weights.first, weights.count >= 2 else { return nil }
        let ranks = weights.map(\.rank)
        guard ranks.allSatisfy({ $0 > 0 && $0 % 16 == 0 }), ranks.reduce(0, +) <= W4A4FastParameters.maxRank else { return nil }
        func smoothBits(_ layer: SVDQW4A4Weights) -> [UInt16] { layer.canonical.smooth.floats().map { type.bits(type.roundSaturating($0)) } }
        let smooth = smoothBits(first)
        for layer in weights.dropFirst() {
            guard layer.inFeatures == first.inFeatures, layer.actUnsigned == first.actUnsigned, smoothBits(layer) == smooth else { return nil }
        }
        return W4A4FastLowRankColumns.shared(ranks: ranks)
    }

    /// The shared pass of `layers` (made with `lowRankColumns(sharing:type:)`'s columns, in that order, on one
    /// engine); uploads their `proj_down`s and `1/beta`s concatenated.
    /// - Throws: `NunchakuError.invalidArgument` naming the layers when there are fewer than two, they differ in
    ///   engine, K, dtype, shift or smoothing, or their low-rank columns are not the shared layout; upload errors.
    public init(_ layers: [CUDASVDQW4A4FastLinear], stream: CUDAStream? = nil) throws {
        let names = layers.map(\.name).joined(separator: " + ")
        guard let first = layers.first, layers.count >= 2 else {
            throw NunchakuError.invalidArgument(context: "fast W4A4 shared input \(names)", reason: "needs at least two layers")
        }
        let p = first.parameters
        let columns = W4A4FastLowRankColumns.shared(ranks: layers.map(\.parameters.rank))
        for (layer, expected) in zip(layers, columns) {
            let q = layer.parameters
            let mismatch: String? =
                layer.engine !== first.engine ? "another engine"
                : q.inFeatures != p.inFeatures ? "K = \(q.inFeatures), not \(p.inFeatures)"
                : q.type != p.type ? "activations \(q.type), not \(p.type)"
                : q.shifted != p.shifted ? "another input shift"
                : q.inverseSmooth != p.inverseSmooth ? "other smoothing factors"
                : q.lowRankColumns != expected ? "low-rank columns \(q.lowRankColumns), not \(expected)"
                : nil
            if let mismatch {
                throw NunchakuError.invalidArgument(context: "fast W4A4 shared input \(names)", reason: "\(layer.name) has \(mismatch)")
            }
        }
        let rank = columns.first?.total ?? 0
        let context = first.engine.context, stream = stream ?? context.currentStream
        let projDown = layers.flatMap(\.parameters.projDownTransposed), inverseBeta = layers.flatMap(\.parameters.inverseBeta)
        input = W4A4FastInputPass(
            engine: first.engine, type: p.type, inFeatures: p.inFeatures, rank: rank, lowRankOffset: 0, depth: p.gemmDepth,
            shifted: p.shifted, inverseSmooth: first.input.inverseSmooth,
            projDownTransposed: try DeviceTensor(
                uploading: DeviceHalfValues.tensor(projDown.map { p.type.bits($0) }, shape: [rank, p.inFeatures], type: p.type),
                context: context, stream: stream),
            inverseBeta: try DeviceTensor(uploading: Tensor(inverseBeta, shape: [rank]), context: context, stream: stream))
        self.layers = layers
    }

    /// The low-rank columns of the shared rows (the sum of the layers' ranks).
    public var rank: Int { input.rank }

    /// The shared GEMM rows' length (every layer's `gemmDepth`).
    public var gemmDepth: Int { input.depth }

    /// Every layer's output `[..., Nᵢ]` for `x` `[..., K]` in the layers' dtype, GELU in the epilogue of the layers
    /// with `gelu[i]` set (`forward(_:gelu:into:stream:)` into new tensors). Queued on `stream` (the input's when nil).
    public func forward(_ x: DeviceTensor, gelu: [Bool], stream: CUDAStream? = nil) throws -> [DeviceTensor] {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: input.inFeatures, "\(name) fast W4A4 shared input")
        let stream = stream ?? x.buffer.workStream
        let outputs = try layers.map {
            try DeviceTensor(shape: [rows, $0.outFeatures], dtype: input.type.dtype, context: input.engine.context, stream: stream)
        }
        try forward(x, gelu: gelu, into: outputs, stream: stream)
        return try zip(layers, outputs).map { try $1.reshaped(Array(x.shape.dropLast()) + [$0.outFeatures]) }
    }

    /// `forward` writing every element of `outputs[i]` ([M, Nᵢ] in the layers' dtype): the shared low-rank
    /// projection and quantize pass, then the layers' FP8 GEMMs in order (each asks the engine's prefetcher for its
    /// weights right before its GEMM, so the learned layer order is the layers' order).
    /// - Throws: `NunchakuError.invalidArgument` when `gelu` or `outputs` do not have one entry per layer; operand
    ///   errors.
    public func forward(_ x: DeviceTensor, gelu: [Bool], into outputs: [DeviceTensor], stream: CUDAStream? = nil) throws {
        let op = "\(name) fast W4A4 shared input"
        guard gelu.count == layers.count, outputs.count == layers.count else {
            throw NunchakuError.invalidArgument(context: op, reason: "\(gelu.count) GELU flags and \(outputs.count) outputs for \(layers.count) layers")
        }
        let stream = stream ?? x.buffer.workStream
        var activations: (codes: DeviceTensor, scales: DeviceTensor)?
        for (layer, (gelu, output)) in zip(layers, zip(gelu, outputs)) {
            try W4A4OperandCheck.tensor(output, dtype: input.type.dtype, op, "\(layer.name) output")
            let weights = try input.engine.lane(for: stream).prefetcher.begin(layer, stream: stream)
            let shared = try activations ?? input.activations(x, stream: stream, op)
            activations = shared
            try layer.multiply(shared, weights: weights, gelu: gelu, accumulate: false,
                               channels: W4A4FastChannels(scales: layer.channelScales, bias: layer.bias), into: output, stream: stream)
        }
    }

    /// The layers' names, joined by " + ".
    var name: String { layers.map(\.name).joined(separator: " + ") }

    /// Step 1 for all layers: `x · [proj_down₀ | proj_down₁ | …]` into `result` [M, rank] (the layers' low-rank
    /// values side by side).
    public func lowRank(_ x: DeviceTensor, into result: DeviceTensor, stream: CUDAStream? = nil) throws {
        try input.lowRank(x, into: result, stream: stream ?? x.buffer.workStream, "\(name) fast W4A4 shared low-rank")
    }

    /// Step 2 for all layers: the shared codes [M, gemmDepth] and scales [M] from x and `lowRank` [M, rank].
    public func quantize(_ x: DeviceTensor, lowRank: DeviceTensor, into result: (codes: DeviceTensor, scales: DeviceTensor),
                         stream: CUDAStream? = nil) throws {
        try input.quantize(x, lowRank: lowRank, into: result, stream: stream ?? x.buffer.workStream, "\(name) fast W4A4 shared quantize")
    }
}
