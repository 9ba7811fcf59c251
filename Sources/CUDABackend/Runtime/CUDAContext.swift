/// The driver's primary context of one device, retained while any stream, buffer, module or kernel made from it lives.
///
/// Every object of the runtime holds this (not `CUDAContext`), so a `CUDAContext` can own its pool, default stream
/// and kernel library without reference cycles.
final class ContextHandle: @unchecked Sendable {
    let driver: CUDADriver
    let device: CUdevice
    let deviceIndex: Int
    let context: CUcontext

    init(driver: CUDADriver, deviceIndex: Int) throws {
        self.driver = driver
        self.deviceIndex = deviceIndex
        device = try driver.device(at: deviceIndex)
        var context: CUcontext?
        try driver.check(driver.api.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain(device \(deviceIndex))")
        guard let context else {
            throw CUDAError.driverUnavailable(reason: "cuDevicePrimaryCtxRetain returned no context for device \(deviceIndex)")
        }
        self.context = context
    }

    deinit {
        _ = driver.api.cuDevicePrimaryCtxRelease(device)
    }

    /// Makes this context current on the calling thread (driver calls act on the current context; Swift tasks may
    /// move between threads, so every operation calls this first; it is a thread-local store in the driver).
    func makeCurrent() throws {
        try driver.check(driver.api.cuCtxSetCurrent(context), "cuCtxSetCurrent(device \(deviceIndex))")
    }

    /// Makes the context current and checks `result` of a call made right after.
    func call(_ name: @autoclosure () -> String, _ body: (CUDADriverAPI) -> CUresult) throws {
        try makeCurrent()
        try driver.check(body(driver.api), name())
    }
}

/// One GPU ready for work: its primary context, a default stream, a stream-ordered memory pool and the kernel library.
///
/// ```swift
/// let gpu = try CUDAContext(deviceIndex: 0)
/// let x = try DeviceTensor(uploading: tensor, context: gpu)
/// let y = try gpu.kernels.convert(x, to: .bf16)
/// let back = try y.download()
/// ```
public final class CUDAContext: @unchecked Sendable {
    let handle: ContextHandle
    /// What the driver reports about this device.
    public let device: CUDADeviceInfo
    /// The stream work goes to when no other is named (a non-blocking stream, not the legacy NULL stream).
    public let defaultStream: CUDAStream
    /// Device memory for this context's buffers; reports current and peak bytes.
    public let memoryPool: CUDAMemoryPool
    /// The compiled kernels, built by NVRTC on first use.
    public let kernels: KernelLibrary

    /// Opens device `deviceIndex` (among those `CUDA_VISIBLE_DEVICES` leaves visible).
    /// - Throws: `CUDAError.driverUnavailable`/`.noDevice` without a usable driver, `.invalidDevice` for an index that
    ///   does not exist.
    public init(deviceIndex: Int = 0, driver: CUDADriver? = nil, compiler: KernelCompiler? = nil) throws {
        let driver = try driver ?? CUDADriver.shared()
        device = try driver.deviceInfo(deviceIndex)
        handle = try ContextHandle(driver: driver, deviceIndex: deviceIndex)
        defaultStream = try CUDAStream(handle: handle)
        memoryPool = try CUDAMemoryPool(handle: handle, usePools: device.supportsMemoryPools)
        kernels = KernelLibrary(handle: handle, device: device, compiler: compiler)
    }

    /// The driver this context runs on.
    public var driver: CUDADriver { handle.driver }

    /// A new stream on this device at `priority` (`CUDAStreamPriority`).
    public func makeStream(priority: CUDAStreamPriority = .normal) throws -> CUDAStream { try CUDAStream(handle: handle, priority: priority) }

    /// A new event on this device; `timing: false` makes a cheaper event for ordering only.
    public func makeEvent(timing: Bool = true) throws -> CUDAEvent { try CUDAEvent(handle: handle, timing: timing) }

    /// Device memory free and total, as the driver reports it now.
    public func memoryInfo() throws -> (freeBytes: Int, totalBytes: Int) {
        var free = 0
        var total = 0
        try handle.call("cuMemGetInfo_v2") { $0.cuMemGetInfo(&free, &total) }
        return (free, total)
    }

    /// Waits for all work on the device to finish, surfacing any asynchronous error (a faulting kernel, say).
    public func synchronize() throws {
        try handle.call("cuCtxSynchronize") { $0.cuCtxSynchronize() }
    }
}
