import NunchakuCore
import SVDQuant

extension CUDASVDQW4A4Linear {
    /// The quantize step (w4a4_quantize.cu) on [..., K] activations of the layer's dtype, flattened to M rows.
    /// Queued on `stream` (the input's stream when nil).
    /// - Throws: `NunchakuError` naming the op and the shapes for a wrong dtype, shape or alignment (before launch).
    public func quantize(_ x: DeviceTensor, stream: CUDAStream? = nil) throws -> CUDAQuantizedActivations {
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, "\(name) W4A4 quantize")
        let result = try makeQuantizedActivations(rows: rows, stream: stream ?? x.buffer.workStream)
        try quantize(x, into: result, stream: stream)
        return result
    }

    /// Buffers for the quantize step of `rows` rows (contents undefined), allocated on `stream`.
    public func makeQuantizedActivations(rows: Int, stream: CUDAStream? = nil) throws -> CUDAQuantizedActivations {
        guard rows >= 1 else {
            throw NunchakuError.invalidArgument(context: "\(name) W4A4 quantize", reason: "\(rows) rows: at least one is needed")
        }
        return try CUDAQuantizedActivations(
            precision: precision, activationDType: activationDType, unsigned: actUnsigned, rows: rows,
            inFeatures: inFeatures, rank: rank, context: context, stream: stream ?? context.currentStream)
    }

    /// The quantize step writing into `result` (from `makeQuantizedActivations` with the input's row count):
    /// every code, scale and low-rank value of its padded rows is overwritten.
    public func quantize(_ x: DeviceTensor, into result: CUDAQuantizedActivations, stream: CUDAStream? = nil) throws {
        let op = "\(name) W4A4 quantize"
        let rows = try W4A4OperandCheck.rows(x, inFeatures: inFeatures, op)
        try W4A4OperandCheck.tensor(x, dtype: activationDType.dtype, op, "input")
        guard result.rows == rows else {
            throw NunchakuError.invalidArgument(context: op, reason: "input \(x.shape) has \(rows) rows, the output buffers \(result.rows)")
        }
        try checkMatches(result, op)
        let stream = stream ?? x.buffer.workStream
        let variant = precision == .nvfp4 ? "nvfp4" : (actUnsigned ? "int4_unsigned" : "int4")
        let kernel = try context.kernels.kernel("w4a4_quantize_\(activationDType)_\(variant)")
        let rankSlices = max(1, (rank + Self.quantizeRankSlice - 1) / Self.quantizeRankSlice)
        try kernel.launch(
            grid: CUDADim3(result.paddedRows / 16, rankSlices), block: CUDADim3(128), stream: stream,
            arguments: [x.argument, smooth.argument, projDown.argument, result.codes.argument, result.scales.argument,
                        result.lowRank.argument, .int32(Int32(rows)), .int32(Int32(inFeatures)), .int32(Int32(rank)),
                        .int32(Int32(result.paddedRows))])
    }

    /// The GEMM step (w4a4_gemm.cu): [M, N] in the layer's dtype. Queued on `stream` (the codes' stream when nil).
    /// - Throws: `NunchakuError` when `activations` come from a layer of another shape, precision, mode or dtype,
    ///   or a buffer is too small or misaligned (before launch).
    public func multiply(_ activations: CUDAQuantizedActivations, stream: CUDAStream? = nil) throws -> DeviceTensor {
        let stream = stream ?? activations.codes.buffer.workStream
        let output = try DeviceTensor(shape: [activations.rows, outFeatures], dtype: activationDType.dtype, context: context, stream: stream)
        try multiply(activations, into: output, stream: stream)
        return output
    }

    /// The GEMM step writing every element of `output` ([M, N] in the layer's dtype).
    public func multiply(_ activations: CUDAQuantizedActivations, into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "\(name) W4A4 GEMM"
        try checkMatches(activations, op)
        let m = activations.rows, mPad = activations.paddedRows
        guard output.shape == [m, outFeatures] else {
            throw NunchakuError.shapeMismatch(context: "\(op) output", expected: [m, outFeatures], actual: output.shape)
        }
        try W4A4OperandCheck.tensor(output, dtype: activationDType.dtype, op, "output")
        let stream = stream ?? activations.codes.buffer.workStream
        let variant = precision == .nvfp4 ? "nvfp4" : (actUnsigned ? "int4_unsigned" : "int4")
        let kernel = try context.kernels.kernel("w4a4_gemm_\(activationDType)_\(variant)\(path.kernelSuffix)")
        try kernel.launch(
            grid: CUDADim3(outFeatures / 128, mPad / 128), block: CUDADim3(256), stream: stream,
            arguments: [activations.codes.argument, activations.scales.argument, weightCodes.argument, weightScales.argument,
                        wcscales?.argument ?? .pointer(0), bias?.argument ?? .pointer(0), activations.lowRank.argument,
                        projUp.argument, output.argument, .int32(Int32(m)), .int32(Int32(outFeatures)),
                        .int32(Int32(inFeatures)), .int32(Int32(rank)), .int32(Int32(mPad)), .float(wtscale)])
    }

    /// Checks that quantized-activation buffers belong to this layer: precision, mode, K, R, dtype, padding,
    /// shapes, dtypes and alignment.
    func checkMatches(_ activations: CUDAQuantizedActivations, _ op: String) throws {
        guard activations.precision == precision, activations.unsigned == actUnsigned, activations.inFeatures == inFeatures,
              activations.rank == rank, activations.activationDType == activationDType
        else {
            throw NunchakuError.invalidArgument(
                context: op,
                reason: "activations (\(activations.precision), unsigned \(activations.unsigned), K \(activations.inFeatures), R \(activations.rank), \(activations.activationDType)) do not match the layer (\(precision), unsigned \(actUnsigned), K \(inFeatures), R \(rank), \(activationDType))")
        }
        let m = activations.rows, mPad = activations.paddedRows
        guard m >= 1, mPad % W4A4FragmentLayout.rowAlignment == 0, mPad >= m else {
            throw NunchakuError.invalidArgument(context: op, reason: "\(m) rows padded to \(mPad): padding must be a multiple of \(W4A4FragmentLayout.rowAlignment) covering the rows")
        }
        let groups = inFeatures / precision.groupSize
        try Self.expect(activations.codes, [mPad, inFeatures / 2], .u8, op, "activation codes")
        try Self.expect(activations.scales, [groups, mPad], CUDAQuantizedActivations.scaleDType(precision, activationDType), op, "activation scales")
        try Self.expect(activations.lowRank, [mPad, rank], .f32, op, "low-rank activations")
    }

    /// Ranks one quantize block handles (`W4A4_RANK_SLICE` in w4a4_quantize.cu).
    static let quantizeRankSlice = 64

    private static func expect(_ tensor: DeviceTensor, _ shape: [Int], _ dtype: DType, _ op: String, _ role: String) throws {
        guard tensor.shape == shape else {
            throw NunchakuError.shapeMismatch(context: "\(op) \(role)", expected: shape, actual: tensor.shape)
        }
        try W4A4OperandCheck.tensor(tensor, dtype: dtype, op, role)
    }
}
