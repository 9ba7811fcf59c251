import NunchakuCore
import SVDQuant

/// An SVDQuant W4A4 linear on a CUDA GPU: the weights uploaded once in the device layouts of `W4A4FragmentLayout`,
/// then `forward` = `quantize` (w4a4_quantize.cu: smoothing, 4-bit activations, low-rank down) + `multiply`
/// (w4a4_gemm.cu: 4-bit GEMM, wcscales/bias, low-rank up), each with the semantics of the CPU reference
/// `SVDQW4A4Linear` (research/nunchaku-internals.md §3).
///
/// The layer computes in one activation dtype, chosen at construction: its 16-bit weights (smoothing factors, INT4
/// group scales, wcscales, bias, low-rank projections) are converted to it once, saturating like the CPU reference.
public final class CUDASVDQW4A4Linear: Sendable {
    public let name: String
    public let precision: SVDQuantPrecision
    /// INT4 activations quantized unsigned after adding 0.171875 (layers fed by GELU).
    public let actUnsigned: Bool
    public let inFeatures: Int
    public let outFeatures: Int
    public let rank: Int
    public let wtscale: Float
    public let activationDType: ActivationDType
    /// The instructions the GEMM uses.
    public let path: W4A4MMAPath
    public let context: CUDAContext

    /// u8 [N, K/2] in the device weight order.
    let weightCodes: DeviceTensor
    /// [K/G, N]: INT4 in the activation dtype, NVFP4 e4m3 bytes.
    let weightScales: DeviceTensor
    let smooth: DeviceTensor
    let wcscales: DeviceTensor?
    let bias: DeviceTensor?
    /// [K, R] in the device low-rank order.
    let projDown: DeviceTensor
    /// [N, R] row-major.
    let projUp: DeviceTensor

    /// Uploads `weights` for activations of `activationDType` (the weights' own dtype when nil).
    /// - Parameter path: the GEMM's instructions; the architecture's preferred path when nil. `.int4Native` runs
    ///   everywhere from sm_80 (emulated on sm_90), which is how selftest checks it on Hopper.
    /// - Throws: `NunchakuError` when a smoothing factor underflows to 0 in `activationDType` or `path` does not
    ///   match the precision; allocation and copy errors.
    public init(weights: SVDQW4A4Weights, activationDType: ActivationDType? = nil, path: W4A4MMAPath? = nil,
                context: CUDAContext, stream: CUDAStream? = nil) throws {
        let type = activationDType ?? weights.weightDType
        let path = path ?? W4A4MMAPath.preferred(for: weights.precision, on: context.device.computeCapability)
        guard path.precision == weights.precision else {
            throw NunchakuError.invalidArgument(context: weights.name, reason: "GEMM path \(path) is for \(path.precision), the layer is \(weights.precision)")
        }
        let stream = stream ?? context.currentStream
        let n = weights.outFeatures, k = weights.inFeatures, r = weights.rank
        let tensors = weights.canonical
        func upload(_ tensor: Tensor) throws -> DeviceTensor { try DeviceTensor(uploading: tensor, context: context, stream: stream) }
        func half(_ tensor: Tensor) throws -> DeviceTensor {
            try upload(try DeviceHalfValues.tensor(DeviceHalfValues.bits(tensor, as: type), shape: tensor.shape, type: type))
        }

        let smoothBits = DeviceHalfValues.bits(tensors.smooth, as: type)
        if let index = smoothBits.firstIndex(where: { $0 & 0x7FFF == 0 }) {
            throw NunchakuError.invalidArgument(context: "\(weights.name).smooth", reason: "element \(index) underflows to 0 in \(type)")
        }
        let codes = W4A4FragmentLayout.packWeightCodes(
            tensors.qweight.contiguous().withUnsafeBytes { Array($0) }, outFeatures: n, inFeatures: k, precision: weights.precision)
        weightCodes = try upload(try Tensor(shape: [n, k / 2], dtype: .u8, bytes: codes))
        weightScales = weights.precision == .int4 ? try half(tensors.wscales) : try upload(tensors.wscales.contiguous())
        smooth = try upload(try DeviceHalfValues.tensor(smoothBits, shape: [k], type: type))
        wcscales = try tensors.wcscales.map(half)
        bias = try tensors.bias.map(half)
        let down = W4A4FragmentLayout.packLowRankDown(
            DeviceHalfValues.bits(tensors.projDown, as: type), inFeatures: k, rank: r, precision: weights.precision)
        projDown = try upload(try DeviceHalfValues.tensor(down, shape: [k, r], type: type))
        projUp = try half(tensors.projUp)

        name = weights.name
        precision = weights.precision
        actUnsigned = weights.actUnsigned
        inFeatures = k
        outFeatures = n
        rank = r
        wtscale = weights.wtscale
        self.activationDType = type
        self.path = path
        self.context = context
    }

    /// A layer with `base`'s 4-bit codes, scales, smoothing factors, wcscales and bias (the same device buffers, not
    /// copies) and another low-rank branch: canonical `projDown` [K, R] and `projUp` [N, R], R a multiple of 16,
    /// converted to the layer's activation dtype and uploaded. LoRAs use it to concatenate their ranks onto the branch
    /// (Models/LoRA); only the low-rank tensors travel.
    /// - Throws: `NunchakuError` for shapes that do not fit `base` or a rank that is not a multiple of 16.
    public init(sharingQuantizedWeightsOf base: CUDASVDQW4A4Linear, projDown: Tensor, projUp: Tensor, stream: CUDAStream? = nil) throws {
        let (k, n) = (base.inFeatures, base.outFeatures), r = projDown.shape.last ?? 0
        guard projDown.shape == [k, r], projUp.shape == [n, r], r % 16 == 0 else {
            throw NunchakuError.invalidArgument(
                context: base.name, reason: "low-rank tensors \(projDown.shape) and \(projUp.shape) do not fit [\(k), R] and [\(n), R] with R a multiple of 16")
        }
        let type = base.activationDType, stream = stream ?? base.context.currentStream
        let down = W4A4FragmentLayout.packLowRankDown(DeviceHalfValues.bits(projDown, as: type), inFeatures: k, rank: r, precision: base.precision)
        self.projDown = try DeviceTensor(uploading: try DeviceHalfValues.tensor(down, shape: [k, r], type: type), context: base.context, stream: stream)
        self.projUp = try DeviceTensor(
            uploading: try DeviceHalfValues.tensor(DeviceHalfValues.bits(projUp, as: type), shape: [n, r], type: type), context: base.context, stream: stream)
        weightCodes = base.weightCodes
        weightScales = base.weightScales
        smooth = base.smooth
        wcscales = base.wcscales
        bias = base.bias
        name = base.name
        precision = base.precision
        actUnsigned = base.actUnsigned
        inFeatures = k
        outFeatures = n
        rank = r
        wtscale = base.wtscale
        activationDType = type
        path = base.path
        context = base.context
    }

    /// Quantize, then multiply: [..., K] activations of the layer's dtype → [..., N].
    public func forward(_ x: DeviceTensor, stream: CUDAStream? = nil) throws -> DeviceTensor {
        let output = try multiply(try quantize(x, stream: stream), stream: stream)
        return try output.reshaped(Array(x.shape.dropLast()) + [outFeatures])
    }
}
