import NunchakuCore
import SVDQuant

/// The activation side of the fast W4A4 path for one input: smoothing and per-token e4m3 quantization
/// (w4a4_fp8_quantize.cu) into GEMM rows of `depth` codes. A layer alone has one (`CUDASVDQW4A4FastLinear`); layers
/// with the same K, shift and smoothing share one (`CUDAW4A4FastSharedInput`), since their codes are the same.
struct W4A4FastInputPass: Sendable {
    let engine: CUDAW4A4FastEngine
    let type: ActivationDType
    let inFeatures: Int
    let depth: Int
    /// Adds 0.171875 before smoothing (layers fed by GELU whose exact mode quantizes unsigned).
    let shifted: Bool
    /// f32 [K].
    let inverseSmooth: DeviceTensor

    /// Writes every byte of `result` (codes u8 [M, depth], scales f32 [M]) from x [M, K].
    func quantize(_ x: DeviceTensor, into result: (codes: DeviceTensor, scales: DeviceTensor), stream: CUDAStream, _ op: String) throws {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, op)
        try W4A4OperandCheck.tensor(x, dtype: type.dtype, op, "input")
        for (tensor, shape, dtype, role) in [(result.codes, [rows, depth], DType.u8, "codes"), (result.scales, [rows], DType.f32, "scales")] {
            guard tensor.shape == shape else { throw NunchakuError.shapeMismatch(context: "\(op) \(role)", expected: shape, actual: tensor.shape) }
            try W4A4OperandCheck.tensor(tensor, dtype: dtype, op, role)
        }
        guard rows > 0 else { return }
        let launch = CUDASVDQW4A4FastLinear.quantizeLaunch(rows: rows, inFeatures: inFeatures)
        let kernel = try engine.context.kernels.kernel("w4a4_fp8_quantize_\(type)\(shifted ? "_shifted" : "")_\(launch.variant)")
        try kernel.launch(
            grid: CUDADim3(rows), block: CUDADim3(launch.threads), stream: stream,
            arguments: [x.argument, inverseSmooth.argument, result.codes.argument, result.scales.argument,
                        .int32(Int32(inFeatures)), .int32(Int32(depth))])
    }

    /// New codes [M, depth] and scales [M] of x, allocated on `stream`.
    func activations(_ x: DeviceTensor, stream: CUDAStream, _ op: String) throws -> (codes: DeviceTensor, scales: DeviceTensor) {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, op)
        let codes = try DeviceTensor(shape: [rows, depth], dtype: .u8, context: engine.context, stream: stream)
        let scales = try DeviceTensor(shape: [rows], dtype: .f32, context: engine.context, stream: stream)
        try quantize(x, into: (codes, scales), stream: stream, op)
        return (codes, scales)
    }
}
