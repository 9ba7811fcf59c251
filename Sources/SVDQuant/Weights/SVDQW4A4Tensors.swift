import NunchakuCore

/// The 4-bit format of an SVDQuant W4A4 layer.
public enum SVDQuantPrecision: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Signed INT4 codes, one 16-bit scale per 64 inputs (activations: signed, or unsigned after GELU).
    case int4
    /// E2M1 codes, one float8 e4m3 micro-scale per 16 inputs, plus optional per-tensor `wtscale` and
    /// per-channel `wcscales`.
    case nvfp4

    /// Inputs per quantization group: 64 (INT4) or 16 (NVFP4).
    public var groupSize: Int { self == .int4 ? 64 : 16 }

    public var description: String { rawValue }
}

/// The tensors of one SVDQuant W4A4 linear by role, in one of the layouts of `SVDQW4A4Layout`.
///
/// Role names follow Nunchaku's Python modules: `smooth` is `smooth_factor` (C++ `smooth`), `projDown`/`projUp`
/// are `proj_down`/`proj_up` (C++ `lora_down`/`lora_up`). Shapes are the same in every layout:
/// `qweight` [N, K/2], `wscales` [K/G, N], `wtscale` [1], `wcscales` [N], `bias` [N], `smooth`/`smoothOrig` [K],
/// `projDown` [K, R], `projUp` [N, R].
public struct SVDQW4A4Tensors: Sendable {
    public var qweight: Tensor
    public var wscales: Tensor
    /// Per-tensor weight scale (NVFP4 only; absent means 1).
    public var wtscale: Tensor?
    /// Per-output-channel weight scale (absent means none is applied).
    public var wcscales: Tensor?
    public var bias: Tensor?
    public var smooth: Tensor
    /// The original smoothing vector: unused by the math, kept so files can be written back unchanged.
    public var smoothOrig: Tensor?
    public var projDown: Tensor
    public var projUp: Tensor

    public init(
        qweight: Tensor, wscales: Tensor, wtscale: Tensor? = nil, wcscales: Tensor? = nil, bias: Tensor?,
        smooth: Tensor, smoothOrig: Tensor? = nil, projDown: Tensor, projUp: Tensor
    ) {
        self.qweight = qweight
        self.wscales = wscales
        self.wtscale = wtscale
        self.wcscales = wcscales
        self.bias = bias
        self.smooth = smooth
        self.smoothOrig = smoothOrig
        self.projDown = projDown
        self.projUp = projUp
    }
}

/// How the per-channel vectors (`bias`, `smooth`, `smoothOrig`, `wcscales`) of a canonical-layout file are ordered.
public enum ChannelVectorOrder: String, Sendable, CaseIterable {
    /// Natural channel order (what this project writes).
    case natural
    /// Nunchaku's permuted order within 128-channel blocks (vllm-omni's converter copies the vectors through
    /// unchanged, so its otherwise row-major files keep this order).
    case nunchaku
}

/// The memory layout of a W4A4 layer's tensors.
public enum SVDQW4A4Layout: Sendable, Equatable {
    /// Nunchaku's MMA-tiled layout (merged single files, legacy folders, Nunchaku-Lite).
    case nunchaku
    /// Row-major layout (docs/svdquant-layouts.md), with the per-channel vectors in the given order.
    case canonical(vectorOrder: ChannelVectorOrder)
}
