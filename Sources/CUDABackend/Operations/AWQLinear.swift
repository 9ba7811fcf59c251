import NunchakuCore
import SVDQuant

/// An AWQ W4A16 linear (adaLN modulation layers) on a CUDA GPU, with the semantics of the CPU reference
/// `AWQW4A16Linear` (awq_gemv.cu): outputs in natural channel order, the folded "+1" of the scale chunks kept.
///
/// Built for a few rows (`AWQGEMVLaunch`: the codes are streamed once per block of up to 4 rows); any M works.
public final class CUDAAWQW4A16Linear: Sendable {
    /// How `forward` lays out its output.
    public enum OutputLayout: Sendable, Equatable {
        /// [..., N], natural channel order (the CPU reference's layout).
        case natural
        /// [S, M, N/S] for a modulation layer of S chunks: chunk s (shift, scale, gate, …) is the contiguous [M, N/S]
        /// block s, which Nunchaku obtains with `split_mod` from its interleaved output.
        case chunks
    }

    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    /// The layer's modulation chunk count (nil for a plain layer).
    public let modulationChunks: Int?
    public let activationDType: ActivationDType
    public let context: CUDAContext

    /// u8 [N, K/2] canonical codes.
    let codes: DeviceTensor
    /// [N, K/64] each.
    let scales: DeviceTensor
    let zeros: DeviceTensor
    let bias: DeviceTensor?

    /// Uploads `weights` for activations of `activationDType` (the weights' own dtype when nil).
    public init(weights: AWQW4A16Weights, activationDType: ActivationDType? = nil, context: CUDAContext, stream: CUDAStream? = nil) throws {
        let type = activationDType ?? weights.weightDType
        let stream = stream ?? context.currentStream
        let n = weights.outFeatures, groups = weights.inFeatures / weights.groupSize
        func upload(_ tensor: Tensor) throws -> DeviceTensor { try DeviceTensor(uploading: tensor, context: context, stream: stream) }
        let (scaleBits, zeroBits) = AWQDeviceLayout.scalesAndZeros(weights, as: type)
        codes = try upload(weights.canonical.qweight.contiguous())
        scales = try upload(try DeviceHalfValues.tensor(scaleBits, shape: [n, groups], type: type))
        zeros = try upload(try DeviceHalfValues.tensor(zeroBits, shape: [n, groups], type: type))
        bias = try weights.canonical.bias.map { try upload(try DeviceHalfValues.tensor(DeviceHalfValues.bits($0, as: type), shape: [n], type: type)) }
        name = weights.name
        inFeatures = weights.inFeatures
        outFeatures = n
        modulationChunks = weights.modulation?.chunks
        self.activationDType = type
        self.context = context
    }

    /// `x · Wᵀ + bias` for [..., K] activations of the layer's dtype. Queued on `stream` (the input's when nil).
    /// - Throws: `NunchakuError` naming the op and the shapes for a wrong dtype, shape or alignment, or `.chunks`
    ///   on a layer without modulation chunks (before launch).
    public func forward(_ x: DeviceTensor, layout: OutputLayout = .natural, stream: CUDAStream? = nil) throws -> DeviceTensor {
        let output = try DeviceTensor(shape: try outputShape(x, layout), dtype: activationDType.dtype, context: context,
                                      stream: stream ?? x.buffer.workStream)
        try forward(x, layout: layout, into: output, stream: stream)
        return output
    }

    /// `forward` writing every element of `output` (of `outputShape(x, layout)`).
    public func forward(_ x: DeviceTensor, layout: OutputLayout = .natural, into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "\(name) AWQ W4A16"
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, op)
        try W4A4OperandCheck.tensor(x, dtype: activationDType.dtype, op, "input")
        let shape = try outputShape(x, layout)
        guard output.shape == shape else {
            throw NunchakuError.shapeMismatch(context: "\(op) output", expected: shape, actual: output.shape)
        }
        try W4A4OperandCheck.tensor(output, dtype: activationDType.dtype, op, "output")
        let chunks = layout == .chunks ? shape[0] : 0
        let plan = AWQGEMVLaunch(rows: rows, outFeatures: outFeatures, inFeatures: inFeatures, type: activationDType)
        let kernel = try context.kernels.kernel(plan.kernelName)
        if plan.sharedMemoryBytes > AWQGEMVLaunch.sharedMemoryLimit { try kernel.setMaxDynamicSharedMemory(plan.sharedMemoryBytes) }
        try kernel.launch(
            grid: plan.grid, block: plan.block, sharedMemoryBytes: plan.sharedMemoryBytes, stream: stream ?? x.buffer.workStream,
            arguments: [x.argument, codes.argument, scales.argument, zeros.argument, bias?.argument ?? .pointer(0),
                        output.argument, .int32(Int32(rows)), .int32(Int32(outFeatures)), .int32(Int32(inFeatures)),
                        .int32(Int32(chunks))])
    }

    /// The output shape for input `x`: [..., N] (natural) or [S, M, N/S] (chunks).
    /// - Throws: `NunchakuError` for a wrong input shape, or `.chunks` on a layer without modulation chunks.
    public func outputShape(_ x: DeviceTensor, _ layout: OutputLayout) throws -> [Int] {
        let op = "\(name) AWQ W4A16"
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, op)
        switch layout {
        case .natural:
            return Array(x.shape.dropLast()) + [outFeatures]
        case .chunks:
            guard let count = modulationChunks else {
                throw NunchakuError.invalidArgument(context: op, reason: "chunked output needs a modulation layer; this one has no chunks")
            }
            return [count, rows, outFeatures / count]
        }
    }
}
