/// What a memory pool must remember while a stream is captured into a CUDA graph.
///
/// During capture, `cuMemAllocAsync` / `cuMemFreeAsync` on the capturing stream become the graph's own allocation
/// and free nodes: memory the graph allocates must also be freed inside it (a graph whose allocations outlive it
/// cannot be launched twice). Buffers made before the capture are real memory the graph's kernels may read or
/// write at every replay, so dropping one during the capture must not free it: the free waits until the graph is
/// destroyed. `Stream` is the stream type (`CUDAStream`; anything in tests).
struct CUDAGraphCaptureLedger<Stream> {
    /// A buffer made before the capture and dropped during it: freed on `stream` once the graph is gone.
    struct DeferredFree {
        let address: CUdeviceptr
        let byteCount: Int
        let stream: Stream
    }

    /// Addresses the graph allocated and has not freed yet, with their sizes.
    private(set) var graphAllocations: [CUdeviceptr: Int] = [:]
    /// Buffers to free after the graph is destroyed, in the order they were dropped.
    private(set) var deferredFrees: [DeferredFree] = []

    /// Records an allocation made inside the graph.
    mutating func allocated(_ address: CUdeviceptr, byteCount: Int) {
        graphAllocations[address] = byteCount
    }

    /// Whether dropping the buffer at `address` should queue its free now (true: the graph allocated it, so the free
    /// becomes a node of the graph) or keep it alive for the graph's lifetime (false: recorded as a deferred free).
    mutating func shouldFreeNow(_ address: CUdeviceptr, byteCount: Int, stream: Stream) -> Bool {
        if graphAllocations.removeValue(forKey: address) != nil { return true }
        deferredFrees.append(DeferredFree(address: address, byteCount: byteCount, stream: stream))
        return false
    }

    /// The graph's allocations still referenced when the capture ends, largest first (each breaks the graph).
    var outliving: [(address: CUdeviceptr, byteCount: Int)] {
        graphAllocations.map { (address: $0.key, byteCount: $0.value) }
            .sorted { $0.byteCount != $1.byteCount ? $0.byteCount > $1.byteCount : $0.address < $1.address }
    }

    /// One line about `outliving` for an error message.
    static func describeOutliving(_ buffers: [(address: CUdeviceptr, byteCount: Int)]) -> String {
        let total = buffers.reduce(0) { $0 + $1.byteCount }
        let sizes = buffers.prefix(4).map { ByteCountText.describe($0.byteCount) }.joined(separator: ", ")
        let more = buffers.count > 4 ? ", …" : ""
        return "\(buffers.count) buffer\(buffers.count == 1 ? "" : "s") (\(ByteCountText.describe(total)): \(sizes)\(more)) "
            + "allocated during the capture are still referenced at its end; copy results into buffers made before the "
            + "capture and drop everything the captured work allocates"
    }
}
