/// The kernels of one context: each kernel file is built (NVRTC or the disk cache) and loaded the first time one of
/// its kernels is asked for, then kept.
public final class KernelLibrary: @unchecked Sendable {
    let handle: ContextHandle
    let device: CUDADeviceInfo
    private let lock = CUDALock()
    private var compiler: KernelCompiler?
    private var modules: [String: CUDAModule] = [:]
    private var records: [KernelBuildRecord] = []

    init(handle: ContextHandle, device: CUDADeviceInfo, compiler: KernelCompiler?) {
        self.handle = handle
        self.device = device
        self.compiler = compiler
    }

    /// How each kernel file loaded so far was obtained, in load order.
    public var buildRecords: [KernelBuildRecord] { lock.withLock { records } }

    /// The compiler in use (made on first use from the process-wide NVRTC and the environment's cache).
    /// - Throws: `CUDAError.nvrtcUnavailable` without NVRTC.
    public func kernelCompiler() throws -> KernelCompiler {
        try lock.withLock { try lockedCompiler() }
    }

    /// The target kernels are built for on this device.
    /// - Throws: `CUDAError.unsupportedArchitecture` when neither NVRTC nor the kernels can serve this GPU.
    public func target() throws -> CUDATarget {
        try CUDATarget.forDevice(device.computeCapability, supportedArchitectures: try kernelCompiler().nvrtc.supportedArchitectures)
    }

    /// The kernel `name`, building and loading its file on first use.
    /// - Throws: `CUDAError.kernelNotFound` for a name no registered file defines; build and load errors otherwise.
    public func kernel(_ name: String) throws -> CUDAKernel {
        guard let source = KernelRegistry.source(defining: name) else {
            throw CUDAError.kernelNotFound(name: name, detail: "no file in KernelRegistry.sources lists it")
        }
        return try lock.withLock {
            if let module = modules[source.name] { return try module.kernel(named: name) }
            let module = try loadModule(source)
            modules[source.name] = module
            return try module.kernel(named: name)
        }
    }

    private func lockedCompiler() throws -> KernelCompiler {
        if let compiler { return compiler }
        let made = try KernelCompiler.makeDefault()
        compiler = made
        return made
    }

    /// Builds and loads `source`; a cached image the driver refuses is rebuilt once, bypassing the cache.
    private func loadModule(_ source: KernelSource) throws -> CUDAModule {
        let compiler = try lockedCompiler()
        let target = try CUDATarget.forDevice(device.computeCapability, supportedArchitectures: compiler.nvrtc.supportedArchitectures)
        let (image, record) = try compiler.build(source, for: target)
        do {
            let module = try CUDAModule(handle: handle, image: image)
            records.append(record)
            return module
        } catch let error as CUDAError where record.fromCache {
            guard case .moduleLoadFailed = error else { throw error }
            let (fresh, freshRecord) = try compiler.build(source, for: target, bypassingCache: true)
            let module = try CUDAModule(handle: handle, image: fresh)
            records.append(freshRecord)
            return module
        }
    }
}
