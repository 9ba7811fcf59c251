/// The two 4-bit formats of SVDQuant W4A4 linears (research/nunchaku-internals.md §1.2, §3.2).
public enum W4A4Format: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Signed INT4 codes in groups of 64 along K, one bf16 scale per (output channel, group).
    case int4
    /// E2M1 codes in groups of 16 along K, one fp8 e4m3 micro-scale per (output channel, group) and one
    /// per-tensor scale (`wtscale`).
    case nvfp4

    /// Elements of K sharing one scale, for weights and activations alike.
    public var groupSize: Int {
        switch self {
        case .int4: 64
        case .nvfp4: 16
        }
    }

    public var description: String { rawValue }
}

/// The 4-bit codes of a quantized weight, canonical layout [N, K] row-major (one code per element, unpacked).
public enum QuantizedCodes: Sendable, Equatable {
    /// INT4 values in [-8, 7] (the quantizer produces [-7, 7]: symmetric range).
    case int4([Int8])
    /// E2M1 codes 0...15 (sign in bit 3), see `FloatFormats.float(e2m1:)`.
    case e2m1([UInt8])

    public var count: Int {
        switch self {
        case let .int4(codes): codes.count
        case let .e2m1(codes): codes.count
        }
    }
}

/// Where the smoothing factors of a layer came from.
public enum SmoothingSource: String, Sendable {
    /// Searched against the layer's output error on calibration activations.
    case calibration
    /// No calibration activations were given: searched against the weight reconstruction error only
    /// (max|X_j| taken as 1), so activation outliers are not accounted for.
    case weightsOnly
    /// Smoothing was switched off (smooth = 1).
    case disabled
}

/// The role of a linear's input, which decides the activation quantizer.
public enum LinearInputKind: String, Sendable {
    /// Any input: activations quantized signed.
    case general
    /// The output of a GELU (FLUX `mlp_fc2`, `mlp_context_fc2`). For INT4 the runtime quantizes
    /// `x + 0.171875` as unsigned (§3.6), so the quantizer works on the shifted input and corrects the bias.
    case postGELU
}

/// The GELU lower-bound shift the INT4 runtime adds to post-GELU activations (`SHIFT_GELU`, §3.6).
public let postGELUShift: Float = 0.171875
