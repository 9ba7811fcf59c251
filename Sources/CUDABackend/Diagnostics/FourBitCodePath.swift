/// The 4-bit weight formats SVDQuant checkpoints use.
public enum FourBitFormat: String, Sendable, Codable, CaseIterable {
    /// Signed 4-bit integers, group size 64 with bf16/fp16 scales (Nunchaku's INT4).
    case int4 = "INT4"
    /// FP4 e2m1 with fp8 e4m3 scales per 16 (NVFP4).
    case nvfp4 = "NVFP4"
}

/// How a GPU executes a 4-bit format: the plan the kernels follow (ARCHITECTURE.md decision 6).
public struct FourBitCodePath: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// The GPU's own 4-bit tensor-core instruction.
        case native
        /// 4-bit storage, codes widened to a wider tensor-core type (int8 exact, fp8 fast).
        case widened
        /// 4-bit storage, dequantized to bf16 for bf16 tensor cores.
        case dequantized
        /// No GPU path: the CPU backend runs it.
        case unsupported
    }

    public let format: FourBitFormat
    public let architecture: ComputeCapability
    public let kind: Kind
    /// One line: what is stored and which instructions do the products.
    public let summary: String

    /// The path `format` takes on a GPU of compute capability `capability`.
    public static func plan(_ format: FourBitFormat, on capability: ComputeCapability) -> FourBitCodePath {
        let (kind, summary) = describe(format, capability.major, capability.architecture)
        return FourBitCodePath(format: format, architecture: capability, kind: kind, summary: summary)
    }

    private static func describe(_ format: FourBitFormat, _ major: Int, _ architecture: Int) -> (Kind, String) {
        guard architecture >= CUDATarget.minimumArchitecture else {
            return (.unsupported, "GPU older than sm_80: runs on the CPU backend")
        }
        switch (format, major) {
        case (.int4, 8):
            return (.native, "native s4 mma.sync (m16n8k64), int32 accumulation: exact")
        case (.int4, 9):
            return (.widened, "4-bit storage, int8 tensor cores (exact) / fp8 wgmma (fast); s4 mma.sync is emulated on Hopper")
        case (.int4, _):
            return (.widened, "4-bit storage, codes widened to int8 for int8 tensor cores (exact); no native s4 MMA")
        case (.nvfp4, 12):
            return (.native, "native FP4 block-scaled mma.sync (kind::mxf4nvf4, sm_\(architecture)a)")
        case (.nvfp4, 10), (.nvfp4, 11):
            return (.dequantized, "FP4 tensor cores exist (tcgen05) but have no kernel yet: dequantized to bf16 (exact)")
        case (.nvfp4, _):
            return (.dequantized, "no native FP4 on sm_\(architecture): dequantized to bf16 tensor cores (exact)")
        }
    }
}
