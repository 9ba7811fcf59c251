/// Where work goes when a call names no stream.
///
/// Ops without a `stream:` argument run on the stream of their input's buffer, and new tensors are allocated on the
/// context's default stream. Inside `CUDAContext.withStream(_:_:)` both go to the given stream instead, for every
/// op called in the closure on this thread (a task-local value, so nested calls and other threads are unaffected):
/// a model can send one branch of its graph, unchanged, to a second stream (`CUDAStreamFork`).
extension CUDAContext {
    /// The stream of the innermost `withStream` on this thread, if any.
    @TaskLocal static var scopedStream: CUDAStream?

    /// Runs `body` with `stream` as the stream of every op and allocation in it that names none.
    public func withStream<R>(_ stream: CUDAStream, _ body: () throws -> R) rethrows -> R {
        try Self.$scopedStream.withValue(stream, operation: body)
    }

    /// The stream new work and allocations go to when none is named: `withStream`'s, else `defaultStream`.
    public var currentStream: CUDAStream {
        Self.scopedStream(of: handle) ?? defaultStream
    }

    /// The scoped stream when it belongs to `handle`'s device.
    static func scopedStream(of handle: ContextHandle) -> CUDAStream? {
        guard let scoped = scopedStream, scoped.handle === handle else { return nil }
        return scoped
    }
}

extension DeviceBuffer {
    /// The stream an op on this buffer runs on when none is named: the scoped stream of `CUDAContext.withStream`
    /// (for this buffer's device), else the stream the buffer was allocated on.
    public var workStream: CUDAStream {
        CUDAContext.scopedStream(of: stream.handle) ?? stream
    }
}

/// A second stream that part of a forward forks onto from a parent stream and joins back from, so two independent
/// chains of work (FLUX's text and image tokens) overlap on the GPU.
///
/// `fork(from:)` makes the fork wait for everything queued on the parent so far; `join(into:)` makes the parent wait
/// for everything queued on the fork so far. Work on the fork allocates on the fork (`CUDAContext.withStream`), so
/// its temporaries are freed in its order. Buffers made on the parent and used on the fork must stay alive until
/// after the join (their frees are queued on the parent). Inside a CUDA graph capture of the parent, a fork joins
/// the capture (its allocations become graph allocations, `CUDAMemoryPool.admitToCapture`); it must be joined back
/// before the capture ends.
public final class CUDAStreamFork: @unchecked Sendable {
    public let stream: CUDAStream
    private let context: CUDAContext
    private let forked: CUDAEvent
    private let joined: CUDAEvent

    /// A new stream on `context`'s device at `priority`, with the two events that order it against a parent.
    public init(context: CUDAContext, priority: CUDAStreamPriority = .normal) throws {
        self.context = context
        stream = try context.makeStream(priority: priority)
        forked = try context.makeEvent(timing: false)
        joined = try context.makeEvent(timing: false)
    }

    /// Work queued on the fork from now on runs after everything queued on `parent` so far.
    public func fork(from parent: CUDAStream) throws {
        try parent.record(forked)
        try stream.wait(for: forked)
        context.memoryPool.admitToCapture(stream, forkedFrom: parent)
    }

    /// Work queued on `parent` from now on runs after everything queued on the fork so far.
    public func join(into parent: CUDAStream) throws {
        try stream.record(joined)
        try parent.wait(for: joined)
    }
}
