/// What NVRTC compiles for: an architecture, whether to use its architecture-specific features (`sm_90a`: wgmma,
/// setmaxnreg), and whether the output is a cubin (machine code) or PTX (the driver compiles it at load time).
public struct CUDATarget: Hashable, Sendable, Codable, CustomStringConvertible {
    public enum Output: String, Sendable, Codable {
        case cubin, ptx
    }

    /// 90 for sm_90.
    public let architecture: Int
    /// The `a` suffix: features that exist only on exactly this architecture (Hopper's wgmma and TMA multicast,
    /// Blackwell's FP4 block-scaled MMA).
    public let architectureSpecific: Bool
    public let output: Output

    public init(architecture: Int, architectureSpecific: Bool = false, output: Output = .cubin) {
        self.architecture = architecture
        self.architectureSpecific = architectureSpecific
        self.output = output
    }

    /// `sm_90a` for a cubin, `compute_90` for PTX.
    public var description: String {
        (output == .cubin ? "sm_" : "compute_") + "\(architecture)" + (architectureSpecific ? "a" : "")
    }

    /// Whether kernels built for this target can use Hopper's warpgroup MMA (wgmma) and tensor copies: a cubin for
    /// exactly `sm_90a`.
    public var hasHopperWGMMA: Bool { architecture == 90 && architectureSpecific && output == .cubin }

    /// The NVRTC option that selects this target.
    public var nvrtcOption: String { "--gpu-architecture=\(description)" }

    /// The oldest architecture the kernels support (bf16 conversions and the tensor-core paths need sm_80).
    public static let minimumArchitecture = 80

    /// The target for a GPU of compute capability `capability`, given the architectures NVRTC can build machine code for.
    ///
    /// A cubin for the exact architecture when NVRTC knows it (with the `a` suffix from sm_90 on, so wgmma and TMA are
    /// usable on Hopper); for a GPU newer than NVRTC knows, PTX for the newest architecture NVRTC has, which the driver
    /// compiles for the GPU.
    /// - Throws: `CUDAError.unsupportedArchitecture` when the GPU is older than sm_80 or NVRTC supports nothing at or below it.
    public static func forDevice(_ capability: ComputeCapability, supportedArchitectures: [Int]) throws -> CUDATarget {
        let architecture = capability.architecture
        guard architecture >= minimumArchitecture else {
            throw CUDAError.unsupportedArchitecture(
                "\(capability) is older than sm_\(minimumArchitecture), the oldest architecture the kernels support")
        }
        if supportedArchitectures.contains(architecture) {
            return CUDATarget(architecture: architecture, architectureSpecific: capability.major >= 9, output: .cubin)
        }
        guard let fallback = supportedArchitectures.filter({ $0 <= architecture }).max() else {
            let range = supportedArchitectures.isEmpty ? "no architectures"
                : "sm_\(supportedArchitectures.min()!)…sm_\(supportedArchitectures.max()!)"
            throw CUDAError.unsupportedArchitecture("NVRTC supports \(range), not this GPU's \(capability): use an NVRTC that supports it")
        }
        return CUDATarget(architecture: fallback, architectureSpecific: false, output: .ptx)
    }
}
