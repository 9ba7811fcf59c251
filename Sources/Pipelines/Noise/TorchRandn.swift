import NunchakuCore

extension TorchCPUGenerator {
    /// `torch.randn(shape, generator=self, dtype=dtype)` on the CPU, as a tensor of `dtype` (f32, f64, bf16 or
    /// f16). diffusers draws FLUX latents this way when given a CPU generator: `[B, 16, H/8, W/8]` in the text
    /// encoder's dtype. See `normal(count:dtype:kernel:reducedPrecision:)` for the options.
    /// - Throws: `NunchakuError.invalidArgument` for a negative dimension, `.dtypeMismatch` for other dtypes.
    public mutating func randn(shape: [Int], dtype: DType = .f32, kernel: TorchNormalKernel = .avx2,
                               reducedPrecision: TorchReducedPrecisionNormal = .floatMath) throws -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw NunchakuError.invalidArgument(context: "torch randn", reason: "negative dimension in shape \(shape)")
        }
        let values = try normal(count: shape.reduce(1, *), dtype: dtype, kernel: kernel, reducedPrecision: reducedPrecision)
        if dtype == .f64 {
            return try values.withUnsafeBytes { try Tensor(shape: shape, dtype: .f64, bytes: $0) }
        }
        return Tensor(values.map { Float($0) }, shape: shape, dtype: dtype)
    }
}
