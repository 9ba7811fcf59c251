/// C types and constants of the CUDA driver API, declared here so the package builds without `cuda.h`.
/// Values are those of CUDA 13.0's `cuda.h` (they are ABI and do not change between releases).

/// A driver call's status (`CUresult`); 0 is success.
public typealias CUresult = Int32
/// A device address (`CUdeviceptr`).
public typealias CUdeviceptr = UInt64

typealias CUdevice = Int32
typealias CUcontext = OpaquePointer
typealias CUstream = OpaquePointer
typealias CUevent = OpaquePointer
typealias CUmodule = OpaquePointer
typealias CUfunction = OpaquePointer
typealias CUmemoryPool = OpaquePointer
typealias CUgraph = OpaquePointer
typealias CUgraphExec = OpaquePointer

/// The `CUresult` codes the runtime reacts to (every other code is reported by name).
enum CUDAResultCode {
    static let success: CUresult = 0
    static let outOfMemory: CUresult = 2
    static let noDevice: CUresult = 100
    static let invalidDevice: CUresult = 101
}

/// `CUdevice_attribute` values.
enum CUDADeviceAttribute {
    static let maxThreadsPerBlock: Int32 = 1
    static let clockRateKHz: Int32 = 13
    static let multiprocessorCount: Int32 = 16
    static let pciBusID: Int32 = 33
    static let pciDeviceID: Int32 = 34
    static let memoryClockRateKHz: Int32 = 36
    static let globalMemoryBusWidth: Int32 = 37
    static let l2CacheSize: Int32 = 38
    static let pciDomainID: Int32 = 50
    static let computeCapabilityMajor: Int32 = 75
    static let computeCapabilityMinor: Int32 = 76
    static let maxSharedMemoryPerBlockOptin: Int32 = 97
    static let memoryPoolsSupported: Int32 = 115
}

/// `CUmemPool_attribute` values (all read and written as `cuuint64_t`).
enum CUDAMemoryPoolAttribute {
    static let releaseThreshold: Int32 = 4
    static let reservedMemoryCurrent: Int32 = 5
    static let reservedMemoryHigh: Int32 = 6
}

/// `CUfunction_attribute` values.
enum CUDAFunctionAttribute {
    static let maxThreadsPerBlock: Int32 = 0
    static let staticSharedBytes: Int32 = 1
    static let localBytes: Int32 = 3
    static let registerCount: Int32 = 4
    static let maxDynamicSharedBytes: Int32 = 8
}

/// `CUjit_option` values used when loading modules.
enum CUDAJITOption {
    static let infoLogBuffer: Int32 = 3
    static let infoLogBufferSizeBytes: Int32 = 4
    static let errorLogBuffer: Int32 = 5
    static let errorLogBufferSizeBytes: Int32 = 6
}

/// Flags for streams, events and host allocations.
enum CUDAFlag {
    static let streamNonBlocking: UInt32 = 0x1
    static let eventDefault: UInt32 = 0x0
    static let eventDisableTiming: UInt32 = 0x2
    /// `CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY`: kernel nodes keep the priority of the stream they were
    /// captured on, instead of all taking the priority of the stream the graph is launched into.
    static let graphUseNodePriority: UInt64 = 0x8
}

/// How strictly a stream capture refuses calls that are not capturable (`CUstreamCaptureMode`).
public enum CUDAStreamCaptureMode: Int32, Sendable, CaseIterable {
    /// Any thread making an unsafe call (a synchronous allocation, a host synchronisation) while this capture runs
    /// gets an error, and the capture is invalidated: the strictest, and the default.
    case global = 0
    /// Only unsafe calls made by the capturing thread are refused.
    case threadLocal = 1
    /// Nothing is refused; unsafe calls simply act outside the graph.
    case relaxed = 2
}

