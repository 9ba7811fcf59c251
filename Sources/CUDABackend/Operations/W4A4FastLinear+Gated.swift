import NunchakuCore

/// The FP8 GEMM epilogue's per-channel vectors: the scale (f32 [N]) and the bias ([N] in the layer's dtype, or none).
struct W4A4FastChannels {
    let scales: DeviceTensor
    let bias: DeviceTensor?
}

/// Gated epilogue channel vectors made ahead for several fast layers by `CUDASVDQW4A4FastLinear.prepareGates` (one
/// launch for up to four layers), carried to the layers by `ModulationChunk.prepared`.
public struct W4A4FastPreparedGates: Sendable {
    struct Entry: Sendable {
        let layer: ObjectIdentifier
        let gateAddress: CUdeviceptr
        let scales: DeviceTensor
        let bias: DeviceTensor?

        var channels: W4A4FastChannels { W4A4FastChannels(scales: scales, bias: bias) }
    }

    let entries: [Entry]

    /// The vectors made for `layer` and the gate at `gateAddress`, if any.
    func channels(for layer: CUDASVDQW4A4FastLinear, gateAddress: CUdeviceptr) -> W4A4FastChannels? {
        entries.first { $0.layer == ObjectIdentifier(layer) && $0.gateAddress == gateAddress }?.channels
    }
}

extension CUDASVDQW4A4FastLinear {
    /// `output ← output + gate ⊙ layer(x)` (FLUX's gated residual) for `output` [M, N] in the layer's dtype and a
    /// gate of one sample (`gate` resolves to N values of that dtype in a `[1, k·N]` table): the gate goes into
    /// the FP8 GEMM's per-channel scale and bias (w4a4_fp8_weights.cu, `w4a4_fp8_gated_channels`: a pass over N
    /// values, or the vectors `gate.prepared` holds for this layer), the old output into its C (beta 1), so the
    /// update costs no pass over [M, N] of its own and the sum is rounded once (a separate gated add rounds the
    /// layer's output first; the gated bias is rounded to the layer's dtype).
    /// - Throws: `NunchakuError` naming the layer when the gate is not one sample's N values in the layer's dtype,
    ///   or `x` / `output` have the wrong shape or dtype.
    public func forward(_ x: DeviceTensor, gate: ModulationChunk, accumulatingInto output: DeviceTensor, stream: CUDAStream? = nil) throws {
        try forward(.values(x), gate: gate, accumulatingInto: output, stream: stream)
    }

    /// The gated forward of `input` (16-bit values, or activations a producer quantized for this layer).
    public func forward(_ input: W4A4FastInput, gate: ModulationChunk, accumulatingInto output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let stream = stream ?? input.workStream
        let gateAddress = try gate.resolve(batch: 1, width: outFeatures, dtype: activationDType.dtype, "\(name) fast W4A4 gated forward",
                                           "gate").address
        let channels = try gate.prepared?.channels(for: self, gateAddress: gateAddress)
            ?? Self.prepareGroup([(self, gate)], stream: stream)[0].channels
        try forward(input, gelu: false, accumulate: true, channels: channels, into: output, stream: stream)
    }

    /// The gated epilogue's channel vectors of each `(layer, gate)` pair (each gate one sample's N values of its
    /// layer's dtype), made on `stream` by one launch per four pairs: a FLUX block makes those of its gated layers
    /// once its modulation is known, instead of one launch per layer.
    /// - Throws: `NunchakuError` naming the layer whose gate does not fit it, or when the layers' dtypes differ.
    public static func prepareGates(_ jobs: [(layer: CUDASVDQW4A4FastLinear, gate: ModulationChunk)],
                                    stream: CUDAStream) throws -> W4A4FastPreparedGates {
        var entries: [W4A4FastPreparedGates.Entry] = []
        var start = 0
        while start < jobs.count {
            let group = jobs[start ..< min(jobs.count, start + 4)]
            entries += try prepareGroup(Array(group), stream: stream)
            start += group.count
        }
        return W4A4FastPreparedGates(entries: entries)
    }

    private static func prepareGroup(_ jobs: [(layer: CUDASVDQW4A4FastLinear, gate: ModulationChunk)],
                                     stream: CUDAStream) throws -> [W4A4FastPreparedGates.Entry] {
        guard let first = jobs.first?.layer else { return [] }
        var entries: [W4A4FastPreparedGates.Entry] = []
        var arguments: [KernelArgument] = []
        for (layer, gate) in jobs {
            guard layer.activationDType == first.activationDType else {
                throw NunchakuError.invalidArgument(
                    context: layer.name, reason: "gated channels made together need one dtype (\(first.name) is \(first.activationDType))")
            }
            let n = layer.outFeatures
            let gateAddress = try gate.resolve(batch: 1, width: n, dtype: layer.activationDType.dtype, "\(layer.name) fast W4A4 gated forward",
                                               "gate").address
            let scales = try DeviceTensor(shape: [n], dtype: .f32, context: layer.engine.context, stream: stream)
            let bias = try layer.bias.map { try DeviceTensor(shape: $0.shape, dtype: $0.dtype, context: layer.engine.context, stream: stream) }
            entries.append(.init(layer: ObjectIdentifier(layer), gateAddress: gateAddress, scales: scales, bias: bias))
            arguments += [.pointer(gateAddress), layer.channelScales.argument, layer.bias?.argument ?? .pointer(0), scales.argument,
                          bias?.argument ?? .pointer(0), .int32(Int32(n))]
        }
        for _ in jobs.count ..< 4 {
            arguments += [.pointer(0), .pointer(0), .pointer(0), .pointer(0), .pointer(0), .int32(0)]
        }
        let widest = jobs.map(\.layer.outFeatures).max() ?? 0
        try first.engine.context.kernels.kernel("w4a4_fp8_gated_channels_\(first.activationDType)").launch(
            grid: CUDADim3((widest + 255) / 256, jobs.count), block: CUDADim3(256), stream: stream, arguments: arguments)
        return entries
    }
}
