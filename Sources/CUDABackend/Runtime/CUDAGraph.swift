/// GPU work captured once from a stream and replayed with one launch (a CUDA graph, instantiated).
///
/// ```swift
/// let graph = try CUDAGraph(capturing: "my step", context: gpu) {
///     try gpu.kernels.convert(x, to: .bf16, into: y)     // queued on gpu.defaultStream: recorded, not run
/// }
/// try graph.launch()                                     // runs it, reading x and writing y as they are now
/// ```
///
/// Everything the closure queues on the stream becomes a node: kernel launches with their arguments as they were
/// (so the graph always reads and writes the same addresses: change inputs by copying new values into the same
/// buffers), device copies, fills, and stream-ordered allocations. What cannot be captured fails the capture with
/// `CUDAError.graphCapture` naming the call: host synchronisation, downloads, synchronous allocations, module loads
/// (warm up first: run the work once eagerly so kernels are compiled and plans made). Memory the closure allocates
/// must be dropped inside it (it becomes graph-owned memory, reused at every launch); buffers that existed before are
/// kept alive until the graph is destroyed even if dropped meanwhile. Each kernel keeps the priority of the stream it
/// was captured on (`CUDAStreamPriority`), as it had when run eagerly.
public final class CUDAGraph: @unchecked Sendable {
    /// What was captured, for messages.
    public let label: String
    /// The stream it was captured from, which `launch()` uses by default.
    public let stream: CUDAStream
    let handle: ContextHandle
    private let pool: CUDAMemoryPool
    private let executable: CUgraphExec
    private let deferredFrees: [CUDAGraphCaptureLedger<CUDAStream>.DeferredFree]
    private let lock = CUDALock()
    private var lastLaunchStream: CUDAStream?

    /// Captures the work `body` queues on `stream` (the context's default when nil) and instantiates it.
    /// - Parameter mode: `.global` (default) makes any unsafe call from any thread during the capture an error.
    /// - Throws: `CUDAError.graphCapture` naming `label` and what broke the capture: the error `body` threw (a driver
    ///   call refused during capture reads `… failed: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED`), the driver's reason to
    ///   end or instantiate the capture, or buffers allocated during the capture that are still referenced.
    public init(capturing label: String, context: CUDAContext, stream: CUDAStream? = nil,
                mode: CUDAStreamCaptureMode = .global, _ body: () throws -> Void) throws {
        let stream = stream ?? context.defaultStream
        self.label = label
        self.stream = stream
        handle = context.handle
        pool = context.memoryPool
        let driver = handle.driver
        try pool.beginCapture(of: stream, context: label)
        do {
            try handle.call("cuStreamBeginCapture_v2(\(mode))") { $0.cuStreamBeginCapture(stream.stream, mode.rawValue) }
        } catch {
            pool.releaseDeferred(pool.endCapture().deferredFrees)
            throw CUDAError.graphCapture(context: label, reason: "\(error)")
        }
        var bodyError: (any Error)?
        do { try body() } catch { bodyError = error }
        var graph: CUgraph?
        let endResult = driver.api.cuStreamEndCapture(stream.stream, &graph)
        let recorded = pool.endCapture()
        var reason: String?
        if let bodyError {
            reason = "\(bodyError)"
        } else if endResult != CUDAResultCode.success {
            let (name, message) = driver.describe(endResult)
            reason = "cuStreamEndCapture failed: \(name) (\(endResult)): \(message)"
        } else if !recorded.outliving.isEmpty {
            reason = CUDAGraphCaptureLedger<CUDAStream>.describeOutliving(recorded.outliving)
        }
        var executable: CUgraphExec?
        if reason == nil {
            let result = driver.api.cuGraphInstantiateWithFlags(&executable, graph, CUDAFlag.graphUseNodePriority)
            if result != CUDAResultCode.success || executable == nil {
                let (name, message) = driver.describe(result)
                reason = "cuGraphInstantiateWithFlags failed: \(name) (\(result)): \(message)"
            }
        }
        // The executable graph is independent of the graph it was made from.
        if let graph { _ = driver.api.cuGraphDestroy(graph) }
        guard reason == nil, let executable else {
            // Graph memory still referenced was never backed: dropping it must free nothing.
            pool.abandon(recorded.outliving.map(\.address))
            pool.releaseDeferred(recorded.deferredFrees)
            throw CUDAError.graphCapture(context: label, reason: reason ?? "no executable graph")
        }
        self.executable = executable
        deferredFrees = recorded.deferredFrees
    }

    deinit {
        guard (try? handle.makeCurrent()) != nil else { return }
        let api = handle.driver.api
        // Buffers the graph may still be using are freed on their own streams: wait for the last launch first.
        if let lastLaunchStream { _ = api.cuStreamSynchronize(lastLaunchStream.stream) }
        _ = api.cuGraphExecDestroy(executable)
        pool.releaseDeferred(deferredFrees)
    }

    /// Queues one run of the graph on `stream` (the capture stream when nil). Returns at once, like a kernel launch.
    /// - Throws: `CUDAError.driverCall` naming `cuGraphLaunch` and the label.
    public func launch(on stream: CUDAStream? = nil) throws {
        let stream = stream ?? self.stream
        guard stream.handle === handle else {
            throw CUDAError.invalidArgument(context: "CUDAGraph.launch(\(label))", reason: "the stream belongs to another device")
        }
        try handle.call("cuGraphLaunch(\(label))") { $0.cuGraphLaunch(executable, stream.stream) }
        lock.withLock { lastLaunchStream = stream }
    }
}
