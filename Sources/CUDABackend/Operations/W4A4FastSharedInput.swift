import NunchakuCore
import SVDQuant

/// Fast W4A4 layers that read the same input with the same smoothing (FLUX's single block: `qkv_proj` and
/// `mlp_fc1` on one LayerNorm output, which DeepCompressor smooths with one vector) and share one activation pass:
/// their low-rank branches live in their folded weights, so the quantized input is the same for all of them; one
/// quantize pass writes it, then each layer's FP8 GEMM reads it. Against separate forwards this reads x once
/// instead of twice and quantizes it once. Each layer alone (`forward` of one layer, e.g. while a LoRA is on it)
/// computes the same codes, so the outputs are the same either way.
public final class CUDAW4A4FastSharedInput: Sendable {
    /// The sharing layers, in the order of their GEMMs in `forward`.
    public let layers: [CUDASVDQW4A4FastLinear]
    /// The shared activation pass.
    let input: W4A4FastInputPass

    /// Whether the layers of `weights` can share one activation pass: at least two layers with the same K, the same
    /// input shift (GELU-fed unsigned INT4 layers) and smoothing factors that are the same bit for bit in `type`.
    public static func canShare(_ weights: [SVDQW4A4Weights], type: ActivationDType) -> Bool {
        guard let first = weights.first, weights.count >= 2 else { return false }
        func smoothBits(_ layer: SVDQW4A4Weights) -> [UInt16] { layer.canonical.smooth.floats().map { type.bits(type.roundSaturating($0)) } }
        let smooth = smoothBits(first)
        return weights.dropFirst().allSatisfy {
            $0.inFeatures == first.inFeatures && $0.actUnsigned == first.actUnsigned && smoothBits($0) == smooth
        }
    }

    /// The shared pass of `layers` (on one engine), in that order; it uses the first layer's uploaded smoothing.
    /// - Throws: `NunchakuError.invalidArgument` naming the layers when there are fewer than two, or they differ in
    ///   engine, K, dtype, shift or smoothing.
    public init(_ layers: [CUDASVDQW4A4FastLinear]) throws {
        let names = layers.map(\.name).joined(separator: " + ")
        guard let first = layers.first, layers.count >= 2 else {
            throw NunchakuError.invalidArgument(context: "fast W4A4 shared input \(names)", reason: "needs at least two layers")
        }
        let p = first.parameters
        for layer in layers.dropFirst() {
            let q = layer.parameters
            let mismatch: String? =
                layer.engine !== first.engine ? "another engine"
                : q.inFeatures != p.inFeatures ? "K = \(q.inFeatures), not \(p.inFeatures)"
                : q.type != p.type ? "activations \(q.type), not \(p.type)"
                : q.shifted != p.shifted ? "another input shift"
                : q.inverseSmooth != p.inverseSmooth ? "other smoothing factors"
                : nil
            if let mismatch {
                throw NunchakuError.invalidArgument(context: "fast W4A4 shared input \(names)", reason: "\(layer.name) has \(mismatch)")
            }
        }
        input = first.input
        self.layers = layers
    }

    /// The shared GEMM rows' length (every layer's `gemmDepth`).
    public var gemmDepth: Int { input.depth }

    /// Every layer's output `[..., Nᵢ]` for `x` `[..., K]` in the layers' dtype, GELU in the epilogue of the layers
    /// with `gelu[i]` set (`forward(_:gelu:into:stream:)` into new tensors). Queued on `stream` (the input's when nil).
    public func forward(_ x: DeviceTensor, gelu: [Bool], stream: CUDAStream? = nil) throws -> [DeviceTensor] {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: input.inFeatures, "\(name) fast W4A4 shared input")
        return try forward(.values(x), rows: rows, gelu: gelu, stream: stream)
    }

    /// Every layer's output [..., Nᵢ] (the codes' leading dimensions) for activations a producer quantized with this pass's smoothing (`inputPass`).
    public func forward(quantized activations: W4A4FastActivations, gelu: [Bool], stream: CUDAStream? = nil) throws -> [DeviceTensor] {
        try forward(.quantized(activations), rows: activations.scales.elementCount, gelu: gelu, stream: stream)
    }

    private func forward(_ x: W4A4FastInput, rows: Int, gelu: [Bool], stream: CUDAStream?) throws -> [DeviceTensor] {
        let stream = stream ?? x.workStream
        let outputs = try layers.map {
            try DeviceTensor(shape: [rows, $0.outFeatures], dtype: input.type.dtype, context: input.engine.context, stream: stream)
        }
        try forward(x, gelu: gelu, into: outputs, stream: stream)
        return try zip(layers, outputs).map { try $1.reshaped(x.leadingShape + [$0.outFeatures]) }
    }

    /// The shared activation pass: the smoothing and depth a producer kernel must use for `forward(quantized:…)`.
    public var inputPass: W4A4FastInputPass { input }

    /// `forward` writing every element of `outputs[i]` ([M, Nᵢ] in the layers' dtype): the shared quantize pass,
    /// then the layers' FP8 GEMMs in order (each asks the engine's prefetcher for its weights right before its GEMM,
    /// so the learned layer order is the layers' order).
    /// - Throws: `NunchakuError.invalidArgument` when `gelu` or `outputs` do not have one entry per layer; operand
    ///   errors.
    public func forward(_ x: DeviceTensor, gelu: [Bool], into outputs: [DeviceTensor], stream: CUDAStream? = nil) throws {
        try forward(.values(x), gelu: gelu, into: outputs, stream: stream)
    }

    private func forward(_ x: W4A4FastInput, gelu: [Bool], into outputs: [DeviceTensor], stream: CUDAStream?) throws {
        let op = "\(name) fast W4A4 shared input"
        guard gelu.count == layers.count, outputs.count == layers.count else {
            throw NunchakuError.invalidArgument(context: op, reason: "\(gelu.count) GELU flags and \(outputs.count) outputs for \(layers.count) layers")
        }
        let stream = stream ?? x.workStream
        var activations: W4A4FastActivations?
        for (layer, (gelu, output)) in zip(layers, zip(gelu, outputs)) {
            try W4A4OperandCheck.tensor(output, dtype: input.type.dtype, op, "\(layer.name) output")
            let weights = try input.engine.lane(for: stream).prefetcher.begin(layer, stream: stream)
            let shared = try activations ?? input.activations(of: x, stream: stream, op)
            activations = shared
            try layer.multiply(shared, weights: weights, gelu: gelu, accumulate: false,
                               channels: W4A4FastChannels(scales: layer.channelScales, bias: layer.bias), into: output, stream: stream)
        }
    }

    /// The layers' names, joined by " + ".
    var name: String { layers.map(\.name).joined(separator: " + ") }

    /// The shared codes [M, gemmDepth] and scales [M] of x.
    public func quantize(_ x: DeviceTensor, into result: (codes: DeviceTensor, scales: DeviceTensor), stream: CUDAStream? = nil) throws {
        try input.quantize(x, into: result, stream: stream ?? x.buffer.workStream, "\(name) fast W4A4 shared quantize")
    }
}
