/// Counters of a context's device memory.
public struct CUDAMemoryStatistics: Sendable, Codable, Equatable {
    /// Bytes in buffers that are alive now.
    public var liveBytes = 0
    /// The most `liveBytes` has been since the pool was made or `resetPeak()` was called.
    public var peakLiveBytes = 0
    /// Buffers alive now.
    public var liveBuffers = 0
    /// Allocations made since the pool was made.
    public var totalAllocations = 0
    /// Bytes the pool holds from the device (live plus cached for reuse); nil without memory pools.
    public var reservedBytes: Int?
    /// The most the pool has held; nil without memory pools.
    public var peakReservedBytes: Int?
}

/// Device memory for one context, allocated in stream order.
///
/// Where the device supports memory pools (all GPUs this project targets) buffers come from the device's default
/// pool through `cuMemAllocAsync` / `cuMemFreeAsync`, with the release threshold raised so freed memory stays cached
/// for reuse instead of going back to the driver at each synchronisation. Otherwise it falls back to
/// `cuMemAlloc_v2` / `cuMemFree_v2`.
public final class CUDAMemoryPool: @unchecked Sendable {
    let handle: ContextHandle
    private let pool: CUmemoryPool?
    private let lock = CUDALock()
    private var counters = CUDAMemoryStatistics()
    /// The capture in progress, if any (`beginCapture` … `endCapture`), the stream it captures, and the streams
    /// forked from it during the capture (`admitToCapture`).
    private var capture: (ledger: CUDAGraphCaptureLedger<CUDAStream>, stream: CUDAStream, forks: [CUDAStream])?
    /// Graph allocations of a failed capture that were never backed by memory: dropping them only fixes the counters.
    private var abandoned: Set<CUdeviceptr> = []

    /// True when buffers come from a stream-ordered pool.
    public var isStreamOrdered: Bool { pool != nil }

    init(handle: ContextHandle, usePools: Bool) throws {
        self.handle = handle
        guard usePools else {
            pool = nil
            return
        }
        var pool: CUmemoryPool?
        try handle.call("cuDeviceGetDefaultMemPool") { $0.cuDeviceGetDefaultMemPool(&pool, handle.device) }
        var keepEverything = UInt64.max
        try handle.call("cuMemPoolSetAttribute(RELEASE_THRESHOLD)") {
            $0.cuMemPoolSetAttribute(pool, CUDAMemoryPoolAttribute.releaseThreshold, &keepEverything)
        }
        self.pool = pool
    }

    /// A buffer of `byteCount` bytes (contents undefined), usable by work queued on `stream` from now on.
    /// It is freed on `stream` when its last reference goes.
    /// - Throws: `CUDAError.outOfMemory` when it does not fit even after waiting for pending frees.
    public func allocate(byteCount: Int, stream: CUDAStream) throws -> DeviceBuffer {
        guard byteCount >= 0 else {
            throw CUDAError.invalidArgument(context: "CUDAMemoryPool.allocate", reason: "negative size \(byteCount)")
        }
        guard stream.handle === handle else {
            throw CUDAError.invalidArgument(context: "CUDAMemoryPool.allocate", reason: "the stream belongs to another device")
        }
        if byteCount == 0 { return DeviceBuffer(address: 0, byteCount: 0, pool: self, stream: stream) }
        let capturing = try checkCaptureStream(stream, byteCount: byteCount)
        var address: CUdeviceptr = 0
        try handle.makeCurrent()
        var result = rawAllocate(&address, byteCount, stream)
        if result == CUDAResultCode.outOfMemory, !capturing {
            // Frees queued on other streams return their memory once they complete: wait for them, hand the pool's
            // cached memory back to the driver, then retry once.
            try trim()
            result = rawAllocate(&address, byteCount, stream)
        }
        if result == CUDAResultCode.outOfMemory, !capturing {
            // A failed pool allocation can leave memory reserved in the pool (seen on an H200: 5 MiB free of
            // 140 GiB after asking for 200 GiB); return it so the driver and the message see the real free memory.
            try trim()
            var free = 0
            var total = 0
            _ = handle.driver.api.cuMemGetInfo(&free, &total)
            throw CUDAError.outOfMemory(requestedBytes: byteCount, freeBytes: free, totalBytes: total,
                                        liveBytes: lock.withLock { counters.liveBytes })
        }
        try handle.driver.check(result, isStreamOrdered ? "cuMemAllocAsync(\(byteCount) bytes)" : "cuMemAlloc_v2(\(byteCount) bytes)")
        lock.withLock {
            counters.liveBytes += byteCount
            counters.liveBuffers += 1
            counters.totalAllocations += 1
            counters.peakLiveBytes = max(counters.peakLiveBytes, counters.liveBytes)
            capture?.ledger.allocated(address, byteCount: byteCount)
        }
        return DeviceBuffer(address: address, byteCount: byteCount, pool: self, stream: stream)
    }

    private func rawAllocate(_ address: inout CUdeviceptr, _ byteCount: Int, _ stream: CUDAStream) -> CUresult {
        isStreamOrdered
            ? handle.driver.api.cuMemAllocAsync(&address, byteCount, stream.stream)
            : handle.driver.api.cuMemAlloc(&address, byteCount)
    }

    /// Called by `DeviceBuffer.deinit`: queues the free on the buffer's stream. A failure here cannot be thrown;
    /// it leaves the memory allocated and is visible as `liveBytes` that never drop.
    /// During a capture, a buffer the graph allocated is freed inside the graph; one made before is kept alive until
    /// the graph is destroyed (`releaseDeferred`).
    func release(_ address: CUdeviceptr, byteCount: Int, stream: CUDAStream) {
        guard byteCount > 0 else { return }
        let freeNow: Bool = lock.withLock {
            if abandoned.remove(address) != nil {
                counters.liveBytes -= byteCount
                counters.liveBuffers -= 1
                return false
            }
            return capture?.ledger.shouldFreeNow(address, byteCount: byteCount, stream: stream) ?? true
        }
        if freeNow { free(address, byteCount: byteCount, stream: stream) }
    }

    private func free(_ address: CUdeviceptr, byteCount: Int, stream: CUDAStream) {
        guard (try? handle.makeCurrent()) != nil else { return }
        let api = handle.driver.api
        let result = isStreamOrdered ? api.cuMemFreeAsync(address, stream.stream) : api.cuMemFree(address)
        guard result == CUDAResultCode.success else { return }
        lock.withLock {
            counters.liveBytes -= byteCount
            counters.liveBuffers -= 1
        }
    }

    /// Whether a CUDA graph capture (`CUDAGraph`) is running on this pool's device: work queued now is recorded,
    /// not run, so nothing may wait for it.
    var isCapturing: Bool { lock.withLock { capture != nil } }

    /// Starts recording allocations for a capture of `stream` (`CUDAGraph`). Until `endCapture`, allocations must
    /// be made on `stream` or a stream forked from it (`admitToCapture`), and buffers made before are not freed when
    /// dropped.
    /// - Throws: `CUDAError.graphCapture` without stream-ordered pools (a synchronous `cuMemAlloc` cannot be
    ///   captured) or while another capture is running on this pool.
    func beginCapture(of stream: CUDAStream, context: String) throws {
        guard isStreamOrdered else {
            throw CUDAError.graphCapture(
                context: context, reason: "this GPU has no stream-ordered memory pools, and cuMemAlloc_v2 cannot be captured")
        }
        try lock.withLock {
            guard capture == nil else {
                throw CUDAError.graphCapture(context: context, reason: "another capture is running on this GPU's memory pool")
            }
            capture = (CUDAGraphCaptureLedger(), stream, [])
        }
    }

    /// Ends the capture begun by `beginCapture` and returns what it recorded.
    func endCapture() -> CUDAGraphCaptureLedger<CUDAStream> {
        lock.withLock {
            let ledger = capture?.ledger ?? CUDAGraphCaptureLedger()
            capture = nil
            return ledger
        }
    }

    /// Marks graph allocations of a discarded graph (never backed by memory): dropping them frees nothing.
    func abandon(_ addresses: [CUdeviceptr]) {
        lock.withLock { abandoned.formUnion(addresses) }
    }

    /// Frees buffers whose frees a capture deferred (the graph that could use them is gone).
    func releaseDeferred(_ frees: [CUDAGraphCaptureLedger<CUDAStream>.DeferredFree]) {
        for entry in frees { free(entry.address, byteCount: entry.byteCount, stream: entry.stream) }
    }

    /// Lets `fork`, which was just made to wait for an event recorded on `parent` (`CUDAStreamFork`), allocate
    /// during the running capture when `parent` is the captured stream or one of its forks: CUDA then captures the
    /// fork's work into the same graph. Does nothing when no capture is running or `parent` is not part of it.
    func admitToCapture(_ fork: CUDAStream, forkedFrom parent: CUDAStream) {
        lock.withLock {
            guard let running = capture, running.stream === parent || running.forks.contains(where: { $0 === parent }),
                  !running.forks.contains(where: { $0 === fork }) else { return }
            capture?.forks.append(fork)
        }
    }

    /// Whether a capture is running; refuses an allocation on a stream that is not part of it.
    private func checkCaptureStream(_ stream: CUDAStream, byteCount: Int) throws -> Bool {
        guard let (captured, forks) = lock.withLock({ capture.map { ($0.stream, $0.forks) } }) else { return false }
        guard captured === stream || forks.contains(where: { $0 === stream }) else {
            throw CUDAError.graphCapture(
                context: "an allocation of \(ByteCountText.describe(byteCount))",
                reason: "it was asked on another stream than the one being captured; allocate on the captured stream")
        }
        return true
    }

    /// The counters now, with the pool's reserved bytes read from the driver.
    public func statistics() throws -> CUDAMemoryStatistics {
        var snapshot = lock.withLock { counters }
        if let pool {
            var reserved: UInt64 = 0
            var peak: UInt64 = 0
            try handle.call("cuMemPoolGetAttribute(RESERVED_MEM_CURRENT)") {
                $0.cuMemPoolGetAttribute(pool, CUDAMemoryPoolAttribute.reservedMemoryCurrent, &reserved)
            }
            try handle.call("cuMemPoolGetAttribute(RESERVED_MEM_HIGH)") {
                $0.cuMemPoolGetAttribute(pool, CUDAMemoryPoolAttribute.reservedMemoryHigh, &peak)
            }
            snapshot.reservedBytes = Int(reserved)
            snapshot.peakReservedBytes = Int(peak)
        }
        return snapshot
    }

    /// Starts the peak counters again from the current values.
    public func resetPeak() throws {
        lock.withLock { counters.peakLiveBytes = counters.liveBytes }
        if let pool {
            var zero: UInt64 = 0
            try handle.call("cuMemPoolSetAttribute(RESERVED_MEM_HIGH)") {
                $0.cuMemPoolSetAttribute(pool, CUDAMemoryPoolAttribute.reservedMemoryHigh, &zero)
            }
        }
    }

    /// Waits for the device, then returns cached (freed) memory to the driver.
    public func trim() throws {
        guard let pool else { return }
        try handle.call("cuCtxSynchronize") { $0.cuCtxSynchronize() }
        try handle.call("cuMemPoolTrimTo") { $0.cuMemPoolTrimTo(pool, 0) }
    }
}

/// Device memory owned by a `CUDAMemoryPool`: freed, in the order of `stream`, when the last reference goes. A
/// view (`view(byteOffset:byteCount:)`) is a range of another buffer and keeps that buffer alive instead.
///
/// Work that uses the buffer on another stream must be ordered before the free: record an event there and make
/// `stream` wait for it (or synchronise) before dropping the buffer.
public final class DeviceBuffer: @unchecked Sendable {
    /// The device address (0 for an empty buffer).
    public let address: CUdeviceptr
    public let byteCount: Int
    /// The stream the buffer was allocated on and will be freed on.
    public let stream: CUDAStream
    let pool: CUDAMemoryPool
    /// The buffer a view lies in (nil for an allocation of its own, which `deinit` returns to the pool).
    private let viewed: DeviceBuffer?

    init(address: CUdeviceptr, byteCount: Int, pool: CUDAMemoryPool, stream: CUDAStream) {
        self.address = address
        self.byteCount = byteCount
        self.pool = pool
        self.stream = stream
        viewed = nil
    }

    private init(viewing buffer: DeviceBuffer, byteOffset: Int, byteCount: Int) {
        address = buffer.address + CUdeviceptr(byteOffset)
        self.byteCount = byteCount
        pool = buffer.pool
        stream = buffer.stream
        viewed = buffer
    }

    deinit {
        if viewed == nil { pool.release(address, byteCount: byteCount, stream: stream) }
    }

    /// `byteCount` bytes of this buffer from `byteOffset`, as a buffer that shares its memory and keeps it alive.
    /// - Throws: `CUDAError.invalidArgument` when the range does not lie inside this buffer.
    public func view(byteOffset: Int, byteCount: Int) throws -> DeviceBuffer {
        guard byteOffset >= 0, byteCount >= 0, byteOffset + byteCount <= self.byteCount else {
            throw CUDAError.invalidArgument(
                context: "DeviceBuffer.view", reason: "\(byteCount) bytes at offset \(byteOffset) do not fit a buffer of \(self.byteCount) bytes")
        }
        return DeviceBuffer(viewing: self, byteOffset: byteOffset, byteCount: byteCount)
    }

    /// This buffer's address as a kernel argument.
    public var argument: KernelArgument { .pointer(address) }
}

/// Page-locked host memory: copies between it and the device run asynchronously at full bus speed.
public final class PinnedHostBuffer: @unchecked Sendable {
    let handle: ContextHandle
    /// The bytes (valid while the buffer lives).
    public let bytes: UnsafeMutableRawBufferPointer

    /// Allocates `byteCount` pinned bytes (contents undefined).
    public init(context: CUDAContext, byteCount: Int) throws {
        guard byteCount > 0 else {
            throw CUDAError.invalidArgument(context: "PinnedHostBuffer", reason: "size must be positive, got \(byteCount)")
        }
        handle = context.handle
        var pointer: UnsafeMutableRawPointer?
        try handle.call("cuMemAllocHost_v2(\(byteCount) bytes)") { $0.cuMemAllocHost(&pointer, byteCount) }
        bytes = UnsafeMutableRawBufferPointer(start: pointer, count: byteCount)
    }

    deinit {
        if (try? handle.makeCurrent()) != nil { _ = handle.driver.api.cuMemFreeHost(bytes.baseAddress) }
    }

    public var byteCount: Int { bytes.count }
}
