import NunchakuCore

/// The output of a W4A4 layer's quantize step (Nunchaku's `quantize_w4a4_act_fuse_lora`), in canonical row-major
/// form: what the GEMM step consumes, and what a GPU quantize kernel is compared against.
public struct QuantizedActivations: Sendable {
    public let precision: SVDQuantPrecision
    public let activationDType: ActivationDType
    /// INT4 codes are unsigned (0…15, input shifted by 0.171875) rather than signed (−8…7).
    public let unsigned: Bool
    /// M.
    public let rows: Int
    /// K.
    public let inFeatures: Int
    /// u8 [M, K/2], low nibble = even k: INT4 two's-complement (or unsigned) codes, or E2M1 codes.
    public let codes: Tensor
    /// [M, K/G], one per row and group: INT4 in the activation dtype, NVFP4 as float8 e4m3fn.
    public let scales: Tensor
    /// f32 [M, R]: `x · proj_down` on the unsmoothed, unshifted input.
    public let lowRank: Tensor

    /// Checks that the tensors fit together.
    /// - Throws: `NunchakuError` naming the tensor with a wrong shape or dtype.
    public init(
        precision: SVDQuantPrecision, activationDType: ActivationDType, unsigned: Bool,
        codes: Tensor, scales: Tensor, lowRank: Tensor
    ) throws {
        guard !(unsigned && precision == .nvfp4) else {
            throw NunchakuError.unsupported(context: "QuantizedActivations", reason: "NVFP4 activations are always signed")
        }
        let (rows, halfK) = try LayoutCheck.matrix(codes, "quantized activation codes")
        try LayoutCheck.dtype(codes, [.u8], "quantized activation codes")
        let k = 2 * halfK
        try LayoutCheck.multiple(k, of: precision.groupSize, "K", "quantized activation codes")
        try LayoutCheck.shape(scales, [rows, k / precision.groupSize], "quantized activation scales")
        try LayoutCheck.dtype(scales, [precision == .int4 ? activationDType.dtype : .f8e4m3fn], "quantized activation scales")
        try LayoutCheck.dtype(lowRank, [.f32], "low-rank activations")
        guard lowRank.rank == 2, lowRank.shape[0] == rows else {
            throw NunchakuError.invalidArgument(
                context: "low-rank activations", reason: "expected shape [\(rows), R], got \(lowRank.shape)")
        }
        self.precision = precision
        self.activationDType = activationDType
        self.unsigned = unsigned
        self.rows = rows
        self.inFeatures = k
        self.codes = codes
        self.scales = scales
        self.lowRank = lowRank
    }

    /// R.
    public var rank: Int { lowRank.shape[1] }
}
