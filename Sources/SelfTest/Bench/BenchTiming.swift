import CUDABackend

/// GPU timing with device events: untimed warm-up launches, then timed ones, each bracketed by events on `stream`;
/// the median in milliseconds. `launch` gets the repetition index (for rotating inputs).
public enum BenchTiming {
    /// The median of `repetitions` timed launches after `warmUp` untimed ones.
    public static func median(_ context: CUDAContext, stream: CUDAStream, warmUp: Int = 2, repetitions: Int = 10,
                              _ launch: (Int) throws -> Void) throws -> Double {
        for index in 0..<warmUp { try launch(index) }
        var events: [(CUDAEvent, CUDAEvent)] = []
        for index in 0..<max(1, repetitions) {
            let start = try context.makeEvent()
            let end = try context.makeEvent()
            try stream.record(start)
            try launch(warmUp + index)
            try stream.record(end)
            events.append((start, end))
        }
        try stream.synchronize()
        let times = try events.map { try $0.1.milliseconds(since: $0.0) }.sorted()
        return times[times.count / 2]
    }

    /// Milliseconds per launch when `repetitions` launches run as one CUDA graph: `warmUp` eager launches (kernels
    /// compiled, plans made), then the launches captured on `stream` and the graph replayed once untimed and
    /// `replays` times between events; the median replay over `repetitions`.
    /// - Throws: `CUDAError.graphCapture` naming `label` when a launch cannot be captured; GPU errors.
    public static func graphMedian(_ context: CUDAContext, stream: CUDAStream, label: String, warmUp: Int = 2, repetitions: Int = 10,
                                   replays: Int = 5, _ launch: (Int) throws -> Void) throws -> Double {
        for index in 0..<warmUp { try launch(index) }
        let graph = try CUDAGraph(capturing: label, context: context, stream: stream) {
            for index in 0..<max(1, repetitions) { try launch(warmUp + index) }
        }
        try graph.launch()
        return try median(context, stream: stream, warmUp: 0, repetitions: replays) { _ in try graph.launch() } / Double(max(1, repetitions))
    }
}
