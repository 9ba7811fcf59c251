import NunchakuCore
import SVDQuant

/// The activation side of the fast W4A4 path for one input: the low-rank down-projection (step 1) and the
/// smoothing + per-token e4m3 quantization (step 2, w4a4_fp8_quantize.cu) into GEMM rows of `depth` codes. A layer
/// alone has one (`CUDASVDQW4A4FastLinear`); layers sharing their input have one over all their low-rank columns
/// (`CUDAW4A4FastSharedInput`: `proj_down` and `1/beta` concatenated, so one GEMM and one quantize pass).
struct W4A4FastInputPass: Sendable {
    let engine: CUDAW4A4FastEngine
    let type: ActivationDType
    let inFeatures: Int
    /// The low-rank columns this pass computes (R alone, the sum of the ranks when shared).
    let rank: Int
    /// Columns between K and the first low-rank column this pass writes (zeros).
    let lowRankOffset: Int
    let depth: Int
    /// Adds 0.171875 before smoothing (layers fed by GELU whose exact mode quantizes unsigned).
    let shifted: Bool
    /// f32 [K].
    let inverseSmooth: DeviceTensor
    /// [rank, K] in the activation dtype.
    let projDownTransposed: DeviceTensor
    /// f32 [rank].
    let inverseBeta: DeviceTensor

    /// Step 1 writing every element of `result` ([M, rank] in the activation dtype): w4a4_fp8_lowrank_down.cu for
    /// the shapes where it is faster (`CUDASVDQW4A4FastLinear.lowRankDownLaunch`), else cuBLASLt.
    func lowRank(_ x: DeviceTensor, into result: DeviceTensor, stream: CUDAStream, _ op: String) throws {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, op)
        try W4A4OperandCheck.tensor(x, dtype: type.dtype, op, "input")
        try Self.checkOperands([(result, [rows, rank], type.dtype, "output")], op)
        guard rank > 0, rows > 0 else { return }
        if let launch = CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: rows, inFeatures: inFeatures, rank: rank) {
            let kernel = try engine.context.kernels.kernel("w4a4_fp8_lowrank_down_\(type)_m\(launch.rowsPerBlock)")
            try kernel.launch(
                grid: CUDADim3((rows + launch.rowsPerBlock - 1) / launch.rowsPerBlock, (rank + 31) / 32),
                block: CUDADim3(32 * launch.warps), sharedMemoryBytes: launch.sharedBytes, stream: stream,
                arguments: [x.argument, projDownTransposed.argument, result.argument, .int32(Int32(rows)), .int32(Int32(inFeatures)),
                            .int32(Int32(rank))])
        } else {
            try engine.linear(try x.reshaped([rows, inFeatures]), weight: projDownTransposed, output: result, stream: stream)
        }
    }

    /// Step 2 writing every byte of `result` (codes u8 [M, depth], scales f32 [M]) from x and its low-rank values
    /// [M, rank].
    func quantize(_ x: DeviceTensor, lowRank: DeviceTensor, into result: (codes: DeviceTensor, scales: DeviceTensor), stream: CUDAStream,
                  _ op: String) throws {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, op)
        try W4A4OperandCheck.tensor(x, dtype: type.dtype, op, "input")
        try Self.checkOperands([(lowRank, [rows, rank], type.dtype, "low-rank values"),
                                (result.codes, [rows, depth], DType.u8, "codes"), (result.scales, [rows], DType.f32, "scales")], op)
        guard rows > 0 else { return }
        let launch = CUDASVDQW4A4FastLinear.quantizeLaunch(rows: rows, inFeatures: inFeatures, rank: rank)
        let kernel = try engine.context.kernels.kernel("w4a4_fp8_quantize_\(type)\(shifted ? "_shifted" : "")_\(launch.variant)")
        try kernel.launch(
            grid: CUDADim3(rows), block: CUDADim3(launch.threads), stream: stream,
            arguments: [x.argument, inverseSmooth.argument, lowRank.argument, inverseBeta.argument, result.codes.argument,
                        result.scales.argument, .int32(Int32(inFeatures)), .int32(Int32(rank)), .int32(Int32(depth)),
                        .int32(Int32(lowRankOffset))])
    }

    /// Steps 1 and 2 into new codes [M, depth] and scales [M] (the low-rank values are a pool scratch).
    func activations(_ x: DeviceTensor, stream: CUDAStream, _ op: String) throws -> (codes: DeviceTensor, scales: DeviceTensor) {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, op)
        let context = engine.context
        let lowRank = try DeviceTensor(shape: [rows, rank], dtype: type.dtype, context: context, stream: stream)
        try self.lowRank(x, into: lowRank, stream: stream, "\(op) low-rank")
        let codes = try DeviceTensor(shape: [rows, depth], dtype: .u8, context: context, stream: stream)
        let scales = try DeviceTensor(shape: [rows], dtype: .f32, context: context, stream: stream)
        try quantize(x, lowRank: lowRank, into: (codes, scales), stream: stream, "\(op) quantize")
        return (codes, scales)
    }

    /// Each operand's shape and dtype, as `op`'s `role`.
    static func checkOperands(_ operands: [(DeviceTensor, [Int], DType, String)], _ op: String) throws {
        for (tensor, shape, dtype, role) in operands {
            guard tensor.shape == shape else { throw NunchakuError.shapeMismatch(context: "\(op) \(role)", expected: shape, actual: tensor.shape) }
            try W4A4OperandCheck.tensor(tensor, dtype: dtype, op, role)
        }
    }
}
