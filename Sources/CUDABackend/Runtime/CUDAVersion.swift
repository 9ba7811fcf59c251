/// A CUDA release number such as 13.0 (the driver's API version, NVRTC's version).
public struct CUDAVersion: Comparable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let major: Int
    public let minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// Decodes the driver's encoding, `1000 * major + 10 * minor` (13000 is 13.0).
    public init(driverEncoded value: Int) {
        self.init(major: value / 1000, minor: (value % 1000) / 10)
    }

    public var description: String { "\(major).\(minor)" }

    public static func < (left: CUDAVersion, right: CUDAVersion) -> Bool {
        (left.major, left.minor) < (right.major, right.minor)
    }
}

/// A GPU's compute capability (9.0 for Hopper).
public struct ComputeCapability: Comparable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let major: Int
    public let minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// The architecture number NVRTC uses (90 for 9.0).
    public var architecture: Int { major * 10 + minor }

    /// `sm_90` style name.
    public var description: String { "sm_\(architecture)" }

    public static func < (left: ComputeCapability, right: ComputeCapability) -> Bool {
        left.architecture < right.architecture
    }
}
