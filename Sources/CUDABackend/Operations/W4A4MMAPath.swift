import SVDQuant

/// Which tensor-core instructions compute the W4A4 GEMM's integer products. Every path gives the same exact
/// integers; they differ in speed by architecture (ARCHITECTURE.md decision 6).
public enum W4A4MMAPath: String, Sendable, CaseIterable, CustomStringConvertible {
    /// INT4: native 4-bit `mma.sync` m16n8k64 (sm_80–89; emulated, slowly, on sm_90).
    case int4Native = "s4"
    /// INT4: codes widened to int8 for `mma.sync` m16n8k32 (sm_90's int8 tensor cores).
    case int4Widened = "s8"
    /// NVFP4: E2M1 codes decoded to int8 (twice their value) for `mma.sync` m16n8k16, one per 16-wide group; the
    /// micro-scales are applied in fp32. For GPUs without FP4 tensor cores (everything before sm_120a here).
    case nvfp4Decoded = "fp4-s8"

    public var description: String { rawValue }

    /// The precision the path computes.
    public var precision: SVDQuantPrecision { self == .nvfp4Decoded ? .nvfp4 : .int4 }

    /// The path for `precision` on a GPU of `capability`: widened int8 from sm_90 on, native 4-bit before.
    public static func preferred(for precision: SVDQuantPrecision, on capability: ComputeCapability) -> W4A4MMAPath {
        switch precision {
        case .nvfp4: .nvfp4Decoded
        case .int4: capability.major >= 9 ? .int4Widened : .int4Native
        }
    }

    /// The suffix of the GEMM kernel names (`w4a4_gemm_<dtype>_<precision>[_unsigned]_<suffix>`), empty for NVFP4.
    var kernelSuffix: String {
        switch self {
        case .int4Native: "_s4"
        case .int4Widened: "_s8"
        case .nvfp4Decoded: ""
        }
    }
}
