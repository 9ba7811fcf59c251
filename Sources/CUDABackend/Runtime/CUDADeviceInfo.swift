/// What the driver reports about one GPU.
public struct CUDADeviceInfo: Sendable, Codable, Equatable {
    /// The index among visible devices (what `--device` takes).
    public let index: Int
    public let name: String
    public let computeCapability: ComputeCapability
    public let totalMemoryBytes: Int
    public let multiprocessorCount: Int
    public let l2CacheBytes: Int
    /// The most shared memory one block may opt in to (via the function's dynamic shared memory attribute).
    public let maxSharedMemoryPerBlockOptin: Int
    public let maxThreadsPerBlock: Int
    /// Peak SM clock in MHz.
    public let clockMHz: Int
    /// Peak memory clock in MHz and bus width in bits (theoretical bandwidth = 2 × clock × width / 8).
    public let memoryClockMHz: Int
    public let memoryBusWidthBits: Int
    /// `domain:bus:device` as `nvidia-smi` prints it.
    public let pciAddress: String
    /// Whether `cuMemAllocAsync` memory pools are available.
    public let supportsMemoryPools: Bool
}

extension CUDADriver {
    /// The properties of device `index`.
    /// - Throws: `CUDAError.invalidDevice` for an index that does not exist, `.driverCall` if a query fails.
    public func deviceInfo(_ index: Int) throws -> CUDADeviceInfo {
        let device = try device(at: index)
        func attribute(_ attribute: Int32, _ label: String) throws -> Int {
            var value: Int32 = 0
            try check(api.cuDeviceGetAttribute(&value, attribute, device), "cuDeviceGetAttribute(\(label))")
            return Int(value)
        }
        var nameBuffer = [CChar](repeating: 0, count: 256)
        try check(api.cuDeviceGetName(&nameBuffer, Int32(nameBuffer.count), device), "cuDeviceGetName")
        var totalMemory = 0
        try check(api.cuDeviceTotalMem(&totalMemory, device), "cuDeviceTotalMem_v2")
        let domain = try attribute(CUDADeviceAttribute.pciDomainID, "PCI_DOMAIN_ID")
        let bus = try attribute(CUDADeviceAttribute.pciBusID, "PCI_BUS_ID")
        let slot = try attribute(CUDADeviceAttribute.pciDeviceID, "PCI_DEVICE_ID")
        return CUDADeviceInfo(
            index: index,
            name: String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
            computeCapability: ComputeCapability(
                major: try attribute(CUDADeviceAttribute.computeCapabilityMajor, "COMPUTE_CAPABILITY_MAJOR"),
                minor: try attribute(CUDADeviceAttribute.computeCapabilityMinor, "COMPUTE_CAPABILITY_MINOR")),
            totalMemoryBytes: totalMemory,
            multiprocessorCount: try attribute(CUDADeviceAttribute.multiprocessorCount, "MULTIPROCESSOR_COUNT"),
            l2CacheBytes: try attribute(CUDADeviceAttribute.l2CacheSize, "L2_CACHE_SIZE"),
            maxSharedMemoryPerBlockOptin: try attribute(CUDADeviceAttribute.maxSharedMemoryPerBlockOptin, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN"),
            maxThreadsPerBlock: try attribute(CUDADeviceAttribute.maxThreadsPerBlock, "MAX_THREADS_PER_BLOCK"),
            clockMHz: try attribute(CUDADeviceAttribute.clockRateKHz, "CLOCK_RATE") / 1000,
            memoryClockMHz: try attribute(CUDADeviceAttribute.memoryClockRateKHz, "MEMORY_CLOCK_RATE") / 1000,
            memoryBusWidthBits: try attribute(CUDADeviceAttribute.globalMemoryBusWidth, "GLOBAL_MEMORY_BUS_WIDTH"),
            pciAddress: Self.hex(domain, digits: 4) + ":" + Self.hex(bus, digits: 2) + ":" + Self.hex(slot, digits: 2),
            supportsMemoryPools: try attribute(CUDADeviceAttribute.memoryPoolsSupported, "MEMORY_POOLS_SUPPORTED") != 0)
    }

    private static func hex(_ value: Int, digits: Int) -> String {
        let text = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
