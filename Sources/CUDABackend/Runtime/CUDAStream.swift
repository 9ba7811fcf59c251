/// A CUDA stream: work queued on it runs in order; different streams may overlap.
public final class CUDAStream: @unchecked Sendable {
    let handle: ContextHandle
    let stream: CUstream

    /// A non-blocking stream at `priority` (`cuStreamCreateWithPriority`).
    init(handle: ContextHandle, priority: CUDAStreamPriority = .normal) throws {
        self.handle = handle
        var least: Int32 = 0, greatest: Int32 = 0
        try handle.call("cuCtxGetStreamPriorityRange") { $0.cuCtxGetStreamPriorityRange(&least, &greatest) }
        let level = priority.level(least: least, greatest: greatest)
        var stream: CUstream?
        try handle.call("cuStreamCreateWithPriority") {
            $0.cuStreamCreateWithPriority(&stream, CUDAFlag.streamNonBlocking, level)
        }
        guard let stream else { throw CUDAError.driverUnavailable(reason: "cuStreamCreateWithPriority returned no stream") }
        self.stream = stream
    }

    deinit {
        if (try? handle.makeCurrent()) != nil { _ = handle.driver.api.cuStreamDestroy(stream) }
    }

    /// Blocks until all work queued so far has finished, surfacing asynchronous errors.
    public func synchronize() throws {
        try handle.call("cuStreamSynchronize") { $0.cuStreamSynchronize(stream) }
    }

    /// Records `event` here: it completes when all work queued before it has.
    public func record(_ event: CUDAEvent) throws {
        try handle.call("cuEventRecord") { $0.cuEventRecord(event.event, stream) }
    }

    /// Makes later work on this stream wait for `event` (recorded on any stream) without blocking the host.
    public func wait(for event: CUDAEvent) throws {
        try handle.call("cuStreamWaitEvent") { $0.cuStreamWaitEvent(stream, event.event, 0) }
    }
}

/// A CUDA event: a marker in a stream, for ordering streams and for timing.
public final class CUDAEvent: @unchecked Sendable {
    let handle: ContextHandle
    let event: CUevent
    /// Whether the event records time (needed by `milliseconds(since:)`).
    public let recordsTime: Bool

    init(handle: ContextHandle, timing: Bool) throws {
        self.handle = handle
        recordsTime = timing
        var event: CUevent?
        let flags = timing ? CUDAFlag.eventDefault : CUDAFlag.eventDisableTiming
        try handle.call("cuEventCreate") { $0.cuEventCreate(&event, flags) }
        guard let event else { throw CUDAError.driverUnavailable(reason: "cuEventCreate returned no event") }
        self.event = event
    }

    deinit {
        if (try? handle.makeCurrent()) != nil { _ = handle.driver.api.cuEventDestroy(event) }
    }

    /// Blocks until the work before the event's last record has finished.
    public func synchronize() throws {
        try handle.call("cuEventSynchronize") { $0.cuEventSynchronize(event) }
    }

    /// GPU time in milliseconds from `start` to this event (both recorded and complete; both must record time).
    public func milliseconds(since start: CUDAEvent) throws -> Double {
        guard recordsTime, start.recordsTime else {
            throw CUDAError.invalidArgument(context: "CUDAEvent.milliseconds", reason: "both events must be created with timing: true")
        }
        var milliseconds: Float = 0
        try handle.call("cuEventElapsedTime") { $0.cuEventElapsedTime(&milliseconds, start.event, event) }
        return Double(milliseconds)
    }
}

/// Which pending blocks the GPU dispatches first when kernels of several streams wait for room: those of the stream
/// with the greater priority. Running blocks are never preempted, and a CUDA graph keeps each captured kernel's
/// priority (`CUDAGraph` instantiates with node priorities).
public enum CUDAStreamPriority: Sendable, CaseIterable {
    /// The device's least priority: the stream's blocks take only the room no other stream's pending blocks claim
    /// (work meant to fill the gaps of the others, such as the weight prefetch).
    case low
    /// One level above `low` (`low` itself on a device with a single level): every stream's default, the context's
    /// default stream included.
    case normal
    /// The device's greatest priority.
    case high

    /// The driver's value for this priority, given the device's range (numerically, greater priorities are smaller).
    func level(least: Int32, greatest: Int32) -> Int32 {
        switch self {
        case .low: least
        case .normal: least > greatest ? least - 1 : least
        case .high: greatest
        }
    }
}
