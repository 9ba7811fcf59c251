import NunchakuCore
import SVDQuant

/// The output of a W4A4 layer's quantize step on the GPU (what `CUDASVDQW4A4Linear.multiply` consumes), in the
/// device layouts of `W4A4FragmentLayout`, rows padded to `paddedRows` (a multiple of 128) with zero codes, zero
/// scales and zero low-rank sums.
public struct CUDAQuantizedActivations: Sendable {
    public let precision: SVDQuantPrecision
    public let activationDType: ActivationDType
    /// INT4 codes are unsigned (0…15, input shifted by 0.171875).
    public let unsigned: Bool
    /// M.
    public let rows: Int
    /// M rounded up to `W4A4FragmentLayout.rowAlignment`.
    public let paddedRows: Int
    /// K.
    public let inFeatures: Int
    /// R.
    public let rank: Int
    /// u8 [Mpad, K/2] in the device activation order.
    public let codes: DeviceTensor
    /// [K/G, Mpad]: INT4 in the activation dtype, NVFP4 as float8 e4m3fn.
    public let scales: DeviceTensor
    /// f32 [Mpad, R]: `x · proj_down` on the unsmoothed, unshifted input.
    public let lowRank: DeviceTensor

    /// Allocates the buffers (contents undefined) on `stream`.
    init(precision: SVDQuantPrecision, activationDType: ActivationDType, unsigned: Bool, rows: Int, inFeatures: Int,
         rank: Int, context: CUDAContext, stream: CUDAStream) throws {
        let paddedRows = W4A4FragmentLayout.paddedRows(rows)
        self.precision = precision
        self.activationDType = activationDType
        self.unsigned = unsigned
        self.rows = rows
        self.paddedRows = paddedRows
        self.inFeatures = inFeatures
        self.rank = rank
        codes = try DeviceTensor(shape: [paddedRows, inFeatures / 2], dtype: .u8, context: context, stream: stream)
        scales = try DeviceTensor(shape: [inFeatures / precision.groupSize, paddedRows],
                                  dtype: Self.scaleDType(precision, activationDType), context: context, stream: stream)
        lowRank = try DeviceTensor(shape: [paddedRows, rank], dtype: .f32, context: context, stream: stream)
    }

    /// A device copy of CPU-quantized activations (for running the GPU GEMM on the CPU reference's quantize step).
    public init(uploading host: QuantizedActivations, context: CUDAContext, stream: CUDAStream? = nil) throws {
        let stream = stream ?? context.currentStream
        try self.init(precision: host.precision, activationDType: host.activationDType, unsigned: host.unsigned,
                      rows: host.rows, inFeatures: host.inFeatures, rank: host.rank, context: context, stream: stream)
        let k = inFeatures, groups = k / precision.groupSize
        let codeBytes = W4A4FragmentLayout.packActivationCodes(
            host.codes.contiguous().withUnsafeBytes { Array($0) }, rows: rows, paddedRows: paddedRows, inFeatures: k,
            precision: precision)
        try codes.upload(try Tensor(shape: codes.shape, dtype: .u8, bytes: codeBytes), stream: stream)
        // Scales: [M, K/G] → [K/G, Mpad], zero-padded; 1 or 2 bytes each, moved as raw bytes.
        let width = scales.dtype.byteCount(forElements: 1)
        var scaleBytes = [UInt8](repeating: 0, count: groups * paddedRows * width)
        host.scales.contiguous().withUnsafeBytes { source in
            for row in 0..<rows {
                for group in 0..<groups {
                    for byte in 0..<width {
                        scaleBytes[(group * paddedRows + row) * width + byte] = source[(row * groups + group) * width + byte]
                    }
                }
            }
        }
        try scales.upload(try Tensor(shape: scales.shape, dtype: scales.dtype, bytes: scaleBytes), stream: stream)
        var lowRankValues = host.lowRank.floats()
        lowRankValues += [Float](repeating: 0, count: (paddedRows - rows) * rank)
        try lowRank.upload(Tensor(lowRankValues, shape: [paddedRows, rank]), stream: stream)
    }

    /// The first `rows` rows in the canonical layout of `QuantizedActivations` (waits for `stream`).
    public func download(stream: CUDAStream? = nil) throws -> QuantizedActivations {
        let k = inFeatures, groups = k / precision.groupSize
        let deviceCodes = try codes.download(stream: stream).withUnsafeBytes { Array($0) }
        let canonicalCodes = W4A4FragmentLayout.unpackActivationCodes(deviceCodes, rows: rows, inFeatures: k, precision: precision)
        let deviceScales = try scales.download(stream: stream)
        let width = scales.dtype.byteCount(forElements: 1)
        var scaleBytes = [UInt8](repeating: 0, count: rows * groups * width)
        deviceScales.withUnsafeBytes { source in
            for row in 0..<rows {
                for group in 0..<groups {
                    for byte in 0..<width {
                        scaleBytes[(row * groups + group) * width + byte] = source[(group * paddedRows + row) * width + byte]
                    }
                }
            }
        }
        let lowRankValues = try lowRank.download(stream: stream).floats()
        return try QuantizedActivations(
            precision: precision, activationDType: activationDType, unsigned: unsigned,
            codes: try Tensor(shape: [rows, k / 2], dtype: .u8, bytes: canonicalCodes),
            scales: try Tensor(shape: [rows, groups], dtype: scales.dtype, bytes: scaleBytes),
            lowRank: Tensor(Array(lowRankValues.prefix(rows * rank)), shape: [rows, rank]))
    }

    /// The dtype of the activation scales.
    static func scaleDType(_ precision: SVDQuantPrecision, _ type: ActivationDType) -> DType {
        precision == .int4 ? type.dtype : .f8e4m3fn
    }
}
