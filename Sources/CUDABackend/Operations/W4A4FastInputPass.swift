import NunchakuCore
import SVDQuant

/// A fast W4A4 layer's input as its FP8 GEMM reads it: e4m3 codes [..., depth] (M rows; `depth` = the layer's
/// `gemmDepth`, zero past K) and per-token fp32 scales [M], value = code · scale. The layer's own activation pass makes them
/// (`W4A4FastInputPass`); a kernel that produces the layer's input may write them instead, with the pass's smoothing
/// (`W4A4FastInputPass.inverseSmooth`), so the layer reads no 16-bit input.
public typealias W4A4FastActivations = (codes: DeviceTensor, scales: DeviceTensor)

/// What a fast W4A4 layer is given: its 16-bit input [M, K], which its activation pass quantizes, or the quantized
/// activations a producer kernel wrote for it.
public enum W4A4FastInput {
    case values(DeviceTensor)
    case quantized(W4A4FastActivations)

    /// The stream of the input's memory (the codes' for quantized input).
    var workStream: CUDAStream {
        switch self {
        case let .values(x): x.buffer.workStream
        case let .quantized(activations): activations.codes.buffer.workStream
        }
    }

    /// The dimensions before the last (of the values, or of the codes), which a layer's output keeps.
    public var leadingShape: [Int] {
        switch self {
        case let .values(x): Array(x.shape.dropLast())
        case let .quantized(activations): Array(activations.codes.shape.dropLast())
        }
    }
}

/// The activation side of the fast W4A4 path for one input: smoothing and per-token e4m3 quantization
/// (w4a4_fp8_quantize.cu) into GEMM rows of `depth` codes. A layer alone has one (`CUDASVDQW4A4FastLinear`); layers
/// with the same K, shift and smoothing share one (`CUDAW4A4FastSharedInput`), since their codes are the same.
public struct W4A4FastInputPass: Sendable {
    public let engine: CUDAW4A4FastEngine
    public let type: ActivationDType
    public let inFeatures: Int
    /// The codes per row: K rounded up to a multiple of 128.
    public let depth: Int
    /// Adds 0.171875 before smoothing (layers fed by GELU whose exact mode quantizes unsigned).
    public let shifted: Bool
    /// f32 [K]: `1 / smooth`, the factor of each input channel before quantization.
    public let inverseSmooth: DeviceTensor

    /// Whether a LayerNorm that makes this pass's input writes the codes itself
    /// (`CUDAContext.layerNorm(_:modulation:eps:quantizedFor:stream:)`): the engine's `quantizesInNorms` is on and
    /// the pass is unshifted (the fused kernel has no shifted form; a LayerNorm's output never feeds a shifted layer).
    public var quantizedByNorms: Bool { !shifted && engine.quantizesInNorms }

    /// Writes every byte of `result` (codes u8 [M, depth], scales f32 [M]) from x [M, K].
    func quantize(_ x: DeviceTensor, into result: W4A4FastActivations, stream: CUDAStream, _ op: String) throws {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, op)
        try W4A4OperandCheck.tensor(x, dtype: type.dtype, op, "input")
        try check(result, rows: rows, op)
        guard rows > 0 else { return }
        let launch = CUDASVDQW4A4FastLinear.quantizeLaunch(rows: rows, inFeatures: inFeatures)
        let kernel = try engine.context.kernels.kernel("w4a4_fp8_quantize_\(type)\(shifted ? "_shifted" : "")_\(launch.variant)")
        try kernel.launch(
            grid: CUDADim3(rows), block: CUDADim3(launch.threads), stream: stream,
            arguments: [x.argument, inverseSmooth.argument, result.codes.argument, result.scales.argument,
                        .int32(Int32(inFeatures)), .int32(Int32(depth))])
    }

    /// The activations of `input`: quantized by this pass (new tensors on `stream`) from 16-bit values, or the given
    /// ones after checking their shapes and dtypes.
    func activations(of input: W4A4FastInput, stream: CUDAStream, _ op: String) throws -> W4A4FastActivations {
        switch input {
        case let .values(x):
            try W4A4OperandCheck.tensor(x, dtype: type.dtype, op, "input")
            return try activations(x, stream: stream, "\(op) quantize")
        case let .quantized(activations):
            return try matrix(activations, rows: activations.scales.elementCount, op)
        }
    }

    /// `activations` with the codes viewed as [rows, depth], after checking that they are codes u8 [..., depth] of
    /// `rows` rows and scales f32 [rows].
    func matrix(_ activations: W4A4FastActivations, rows: Int, _ op: String) throws -> W4A4FastActivations {
        guard activations.codes.shape.last == depth, activations.codes.elementCount == rows * depth else {
            throw NunchakuError.shapeMismatch(context: "\(op) codes", expected: [rows, depth], actual: activations.codes.shape)
        }
        let matrix = (codes: try activations.codes.reshaped([rows, depth]), scales: activations.scales)
        try check(matrix, rows: rows, op)
        return matrix
    }

    /// Throws unless `activations` are codes u8 [rows, depth] and scales f32 [rows].
    func check(_ activations: W4A4FastActivations, rows: Int, _ op: String) throws {
        for (tensor, shape, dtype, role) in [(activations.codes, [rows, depth], DType.u8, "codes"), (activations.scales, [rows], DType.f32, "scales")] {
            guard tensor.shape == shape else { throw NunchakuError.shapeMismatch(context: "\(op) \(role)", expected: shape, actual: tensor.shape) }
            try W4A4OperandCheck.tensor(tensor, dtype: dtype, op, role)
        }
    }

    /// New codes [M, depth] and scales [M] of x, allocated on `stream`.
    func activations(_ x: DeviceTensor, stream: CUDAStream, _ op: String) throws -> W4A4FastActivations {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, op)
        let codes = try DeviceTensor(shape: [rows, depth], dtype: .u8, context: engine.context, stream: stream)
        let scales = try DeviceTensor(shape: [rows], dtype: .f32, context: engine.context, stream: stream)
        try quantize(x, into: (codes, scales), stream: stream, op)
        return (codes, scales)
    }
}
