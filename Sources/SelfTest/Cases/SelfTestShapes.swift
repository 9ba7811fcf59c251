import NunchakuCore

/// Shapes and tolerances the op cases share.
enum SelfTestShapes {
    /// The activation formats every op is checked in.
    static let dtypes: [DType] = [.bf16, .f16]

    /// FLUX.1 at 1024×1024: 4096 image tokens, 512 text tokens, width 3072, 24 heads of 128.
    static let fluxTokens = 4608
    static let fluxTextTokens = 512
    static let fluxWidth = 3072
    static let fluxHeads = 24
    static let fluxHeadDim = 128

    /// ‖gpu − cpu‖/‖cpu‖ allowed for an op whose only rounding is the output's (float32 inside): a few times the
    /// RMS relative rounding error of the format (bf16 ≈ 1.6e-3, f16 ≈ 2e-4).
    static func outputRounding(_ dtype: DType) -> Double { dtype == .bf16 ? 1e-2 : 2e-3 }

    /// `[1, 4608, 3072]` style.
    static func text(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }

    /// Bytes of `count` elements of `dtype`, as a Double for throughput.
    static func bytes(_ count: Int, _ dtype: DType) -> Double { Double(dtype.byteCount(forElements: count)) }
}

extension RandomTensor {
    /// The values as a float32 host tensor (exact), for CPU references that should not round in between.
    var float32: Tensor { Tensor(values, shape: shape) }
}
