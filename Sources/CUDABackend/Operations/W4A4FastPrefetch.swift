import NunchakuCore

/// The order in which an engine's fast layers run, learned from their calls: a model's forward calls its layers
/// in the same order every time, so once a layer is called again after a run of distinct layers that started with
/// it, that run is the order. From then on each call in that order names the layer expected after it (none after
/// the last, so nothing is left in flight when a forward ends); a call out of order forgets the order and starts
/// learning again from that call.
struct W4A4LayerSequence {
    /// What one call means for prefetching.
    struct Visit: Equatable {
        /// The call follows the learned order (its weights may have been prefetched by its predecessor).
        let inOrder: Bool
        /// The index in `order` of the layer expected next, when there is one in this forward.
        let successor: Int?
    }

    /// The learned order (empty while learning).
    private(set) var order: [ObjectIdentifier] = []
    /// The distinct layers called since learning started.
    private var recording: [ObjectIdentifier] = []
    /// The index in `order` of the layer expected next.
    private var position = 0

    /// Notes a call of `layer`.
    mutating func visit(_ layer: ObjectIdentifier) -> Visit {
        if !order.isEmpty {
            if order[position] == layer {
                let next = position + 1
                position = next < order.count ? next : 0
                return Visit(inOrder: true, successor: next < order.count ? next : nil)
            }
            order = []
            recording = []
        }
        if recording.first == layer {
            order = recording
            recording = []
            position = order.count > 1 ? 1 : 0
            return Visit(inOrder: true, successor: order.count > 1 ? 1 : nil)
        }
        if recording.contains(layer) { recording = [] }
        recording.append(layer)
        return Visit(inOrder: false, successor: nil)
    }

    /// Forgets the order and what was recorded.
    mutating func reset() { self = W4A4LayerSequence() }
}

/// Runs the weight expansion of fast W4A4 layers off the critical path: an e4m3 scratch of two slots (each sized
/// for the largest layer made on the engine) and a side stream. Layer `i` of a learned order
/// (`W4A4LayerSequence`) queues the expansion of layer `i + 1` into the slot layer `i − 1`'s GEMM read, on the side
/// stream, forked from the calling stream by an event recorded before layer `i`'s own work, so it overlaps layer
/// `i`'s passes and GEMM; layer `i + 1` makes its stream wait for that expansion before its GEMM. The first layer of
/// a forward, and any call out of order, expands in line into the other slot (any prefetch still in flight is
/// joined first). Every fork is joined within the forward, so a forward captures into a CUDA graph as two branches.
/// The expansion is deterministic: results are bit for bit those of expanding in line.
///
/// With the learned order off, a model may still ask for one layer's expansion ahead (`request(_:after:)`): queued at
/// once on the side stream, the slots taken in turn, and read by that layer's next call.
///
/// One per `CUDAW4A4FastLane`: used from that lane's stream only (and `request` from a stream whose queued work
/// already follows this lane's earlier GEMMs).
final class CUDAW4A4WeightPrefetcher: @unchecked Sendable {
    /// The weights a layer's GEMM reads this call.
    enum Weights {
        /// Expanded into `slot` by the predecessor's prefetch; the GEMM's stream waits for `ready` first.
        case prefetched(slot: DeviceBuffer, ready: CUDAEvent)
        /// To be expanded in line into `slot`.
        case inLine(slot: DeviceBuffer)
        /// No slot fits (or prefetching is off): expanded into a scratch from the memory pool.
        case pool
    }

    private let context: CUDAContext
    private let sideStream: CUDAStream
    private let lock = CUDALock()
    private var enabled: Bool
    private var sequence = W4A4LayerSequence()
    /// The layers of `sequence.order` (weakly: the engine must not keep a model's layers alive).
    private var layers: [ObjectIdentifier: WeakLayer] = [:]
    private var slots: [DeviceBuffer] = []
    /// Slots replaced by larger ones: a captured graph may still write them, so they live as long as the engine.
    private var retired: [DeviceBuffer] = []
    /// Per slot: the layer whose prefetch into it has not been waited for (held, so its identifier is not reused
    /// meanwhile), its completion event, and whether `request` queued it (kept until that layer's call) rather than
    /// the learned order.
    private var pending: [(layer: CUDASVDQW4A4FastLinear, ready: CUDAEvent, requested: Bool)?] = [nil, nil]
    /// The slot the last `request` filled.
    private var lastRequestSlot = 1
    private let readyEvents: [CUDAEvent]
    private let forkEvent: CUDAEvent
    /// The slot the last GEMM read.
    private var lastSlot = 0
    private var prefetches = 0

    init(context: CUDAContext, enabled: Bool) throws {
        self.context = context
        self.enabled = enabled
        // Low priority: the expansions take the room the calling stream's kernels leave (their tails, the gaps
        // between them) instead of competing with them for the multiprocessors.
        sideStream = try context.makeStream(priority: .low)
        readyEvents = try [context.makeEvent(timing: false), context.makeEvent(timing: false)]
        forkEvent = try context.makeEvent(timing: false)
    }

    /// Whether layers prefetch their successors' weights (off: every forward expands into a pool scratch).
    var isEnabled: Bool {
        get { lock.withLock { enabled } }
        set { lock.withLock { enabled = newValue; if !newValue { sequence.reset() } } }
    }

    /// How many expansions were queued on the side stream so far.
    var prefetchCount: Int { lock.withLock { prefetches } }

    /// Makes both slots hold at least `byteCount` bytes (called when a layer is made, outside any capture).
    func reserve(byteCount: Int, stream: CUDAStream) throws {
        try lock.withLock {
            guard slots.first.map({ $0.byteCount < byteCount }) ?? true else { return }
            // Older slots may be read or written by queued work (or a captured graph): keep them.
            retired += slots
            slots = try (0..<2).map { _ in try context.memoryPool.allocate(byteCount: byteCount, stream: stream) }
            pending = [nil, nil]
        }
    }

    /// Called by `layer` at the start of its forward on `stream`, before any of its work is queued: learns the
    /// order, joins prefetches of other layers, queues the successor's expansion on the side stream, and says where
    /// this call's weights come from.
    func begin(_ layer: CUDASVDQW4A4FastLinear, stream: CUDAStream) throws -> Weights {
        try lock.withLock {
            guard enabled else {
                try joinAll(on: stream, keepingRequests: true)
                guard let index = pending.firstIndex(where: { $0?.layer === layer }), let entry = pending[index] else { return .pool }
                pending[index] = nil
                return .prefetched(slot: slots[index], ready: entry.ready)
            }
            guard slots.count == 2, layer.foldedByteCount <= slots[0].byteCount else { return .pool }
            let id = ObjectIdentifier(layer)
            let visit = sequence.visit(id)
            layers[id] = WeakLayer(layer)
            if layers.count > Self.forgetDeadLayersAbove { layers = layers.filter { $0.value.layer != nil } }
            // This call's slot: where its prefetch went, else the one the last GEMM did not read.
            let slot: Int
            let weights: Weights
            if let index = pending.firstIndex(where: { $0?.layer === layer }), let entry = pending[index] {
                slot = index
                pending[index] = nil
                weights = .prefetched(slot: slots[index], ready: entry.ready)
            } else {
                slot = lastSlot ^ 1
                weights = .inLine(slot: slots[slot])
            }
            try joinAll(on: stream)
            lastSlot = slot
            if let successor = visit.successor, let next = layers[sequence.order[successor]]?.layer,
               next.foldedByteCount <= slots[0].byteCount {
                try queueExpansion(of: next, into: slot ^ 1, after: stream, requested: false)
            }
            return weights
        }
    }

    /// With the learned order off: queues `layer`'s expansion on the side stream after the work queued on `origin`
    /// so far, into the slot the previous request did not fill; `layer`'s next call on this lane reads it. Does
    /// nothing while the learned order is on (it prefetches every layer), when the layer does not fit a slot, or when
    /// `layer` already has an expansion queued. Being at low priority, the expansion takes the multiprocessors that
    /// the kernels queued next leave free.
    func request(_ layer: CUDASVDQW4A4FastLinear, after origin: CUDAStream) throws {
        try lock.withLock {
            guard !enabled, slots.count == 2, layer.foldedByteCount <= slots[0].byteCount,
                  !pending.contains(where: { $0?.layer === layer }) else { return }
            // An unread request in that slot is dropped (its layer then expands in line); the side stream keeps the
            // two expansions in order.
            lastRequestSlot ^= 1
            try queueExpansion(of: layer, into: lastRequestSlot, after: origin, requested: true)
        }
    }

    /// Queues `layer`'s expansion into slot `target` on the side stream, after the work queued on `origin` so far,
    /// and notes it pending; the caller holds `lock`.
    private func queueExpansion(of layer: CUDASVDQW4A4FastLinear, into target: Int, after origin: CUDAStream, requested: Bool) throws {
        try origin.record(forkEvent)
        try sideStream.wait(for: forkEvent)
        try layer.expandWeights(into: slots[target], stream: sideStream, overlappingPredecessor: false)
        try sideStream.record(readyEvents[target])
        pending[target] = (layer, readyEvents[target], requested)
        prefetches += 1
    }

    /// Past this many remembered layers, those that are gone are dropped from `layers`.
    private static let forgetDeadLayersAbove = 1024

    /// Makes `stream` wait for every prefetch in flight (a call out of order, or prefetching turned off), except
    /// with `keepingRequests` those `request` queued; the caller holds `lock`.
    private func joinAll(on stream: CUDAStream, keepingRequests: Bool = false) throws {
        for index in pending.indices {
            guard let entry = pending[index], !(keepingRequests && entry.requested) else { continue }
            try stream.wait(for: entry.ready)
            pending[index] = nil
        }
    }
}

/// A layer the prefetcher may expand later, held weakly.
private struct WeakLayer {
    weak var layer: CUDASVDQW4A4FastLinear?
    init(_ layer: CUDASVDQW4A4FastLinear) { self.layer = layer }
}
