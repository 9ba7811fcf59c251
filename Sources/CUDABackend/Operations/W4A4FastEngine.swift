import NunchakuCore

/// How a model runs its INT4 SVDQuant W4A4 layers.
public enum W4A4Numerics: String, Sendable, CaseIterable, Codable {
    /// Nunchaku's kernel numerics (4-bit activations per 64-group, half-precision running sums): bit-compatible with
    /// the CPU reference, on every GPU from sm_80.
    case exact
    /// The Hopper path (`CUDASVDQW4A4FastLinear`): per-token FP8 activations, FP8 tensor cores; sm_90+, INT4 and NVFP4 layers.
    case fast
}

/// How the fast path's FP8 GEMM sums along its depth (K, padded to 128).
public enum FP8Accumulation: String, Sendable, CaseIterable, Codable {
    /// Partial sums promoted to fp32 registers along the whole depth (cuBLASLt's default): the most exact, about 10 %
    /// slower.
    case promoted
    /// cuBLASLt's fast accumulation everywhere: partial sums stay in the tensor cores' reduced-precision accumulator.
    /// The default (`standard`), as in vLLM's and torchao's FP8 inference GEMMs. Against float64 sums of the same
    /// codes it adds 1.5e-3 (K = 3072) to 3.2e-3 (K = 12288, GELU-fed) of the output's RMS where promotion adds 2.3e-4
    /// (H100), an order below the W4A4 layer's own error against its dense weights (3.6–3.8e-2); end to end the
    /// fast mode stays well inside the exact mode's error (docs/hopper.md, "Session 13").
    case fast
    /// Fast accumulation up to `fastDepthLimit` (FLUX's width-3072 inputs: most of the FLOPs), promoted above (the
    /// long GELU-fed sums): the default before session 13, 2–3 ms slower per 1024² step on an H100.
    case mixed

    /// What the engine, the pipelines and the CLI use unless told otherwise.
    public static let standard = FP8Accumulation.fast

    /// The longest depth `mixed` accumulates fast.
    public static let fastDepthLimit = 4096

    /// Whether a GEMM of `depth` uses fast accumulation.
    public func isFast(depth: Int) -> Bool {
        switch self {
        case .promoted: false
        case .fast: true
        case .mixed: depth <= Self.fastDepthLimit
        }
    }
}

/// What the fast (FP8) W4A4 layers of one model share: their settings, and per stream they run on a lane
/// (`CUDAW4A4FastLane`): a cuBLASLt handle with its workspace and plans (the FP8 product with outer-vector
/// scales), and a weight prefetcher (a double-buffered e4m3 scratch and a side
/// stream: each layer's weights are expanded while its predecessor on that stream runs, `CUDAW4A4WeightPrefetcher`).
/// Make one per model and pass it to every `CUDASVDQW4A4FastLinear`. Layers called on different streams use
/// different lanes, so two chains of layers may run at once (FLUX's text and image tokens); a layer keeps to one
/// stream, so each lane learns its own layer order.
public final class CUDAW4A4FastEngine: Sendable {
    /// The oldest GPU the fast path is offered on: Hopper (FP8 tensor cores, cuBLASLt outer-vector scaling).
    public static let minimumComputeCapability = ComputeCapability(major: 9, minor: 0)

    public let context: CUDAContext
    /// Whether this GPU's kernels are built for sm_90a, the one target with the wgmma expansion kernels.
    private let hasWGMMAExpansion: Bool
    nonisolated(unsafe) private var wgmmaExpansion: Bool
    nonisolated(unsafe) private var earlyExpansion = true
    nonisolated(unsafe) private var fp8Accumulation: FP8Accumulation
    private let lock = CUDALock()
    nonisolated(unsafe) private var sharedInputs = true
    nonisolated(unsafe) private var attentionCodes = true
    nonisolated(unsafe) private var normQuantization = true
    nonisolated(unsafe) private var attentionOverlap = true
    nonisolated(unsafe) private var lanes: [CUDAW4A4FastLane] = []
    nonisolated(unsafe) private var prefetching: Bool
    nonisolated(unsafe) private var tuning: Bool
    /// The largest folded weights of a layer made on this engine: every lane's prefetch slots hold them.
    nonisolated(unsafe) private var largestFoldedBytes = 0

    /// Loads cuBLASLt for `context` and makes the lane of its default stream.
    /// - Parameters:
    ///   - accumulation: where the FP8 GEMM accumulates fast.
    ///   - prefetchWeights: the initial `prefetchesWeights`.
    ///   - tuneGEMMs: the initial `tunesGEMMs`.
    /// - Throws: `NunchakuError.unsupported` naming the GPU when it is older than sm_90; NVRTC and cuBLASLt load
    ///   errors.
    public init(context: CUDAContext, accumulation: FP8Accumulation = .standard, prefetchWeights: Bool = false, tuneGEMMs: Bool = true) throws {
        let capability = context.device.computeCapability
        guard capability >= Self.minimumComputeCapability else {
            throw NunchakuError.unsupported(
                context: "fast W4A4 numerics on \(context.device.name) (\(capability))",
                reason: "needs \(Self.minimumComputeCapability) or newer (FP8 tensor cores); use the exact numerics")
        }
        self.context = context
        hasWGMMAExpansion = try context.kernels.target().hasHopperWGMMA
        wgmmaExpansion = hasWGMMAExpansion
        fp8Accumulation = accumulation
        prefetching = prefetchWeights
        tuning = tuneGEMMs
        lanes = [try CUDAW4A4FastLane(context: context, stream: context.defaultStream, prefetchWeights: prefetchWeights,
                                      tuneGEMMs: tuneGEMMs)]
    }

    /// The lane of `stream`, made on its first use (outside a graph capture: a lane allocates its workspace and
    /// slots, which a captured graph cannot keep). Call it ahead for a stream a captured forward will use.
    /// - Throws: `CUDAError.graphCapture` for a new stream during a capture; allocation errors.
    @discardableResult
    public func lane(for stream: CUDAStream) throws -> CUDAW4A4FastLane {
        try lock.withLock {
            if let lane = lanes.first(where: { $0.stream === stream }) { return lane }
            guard !context.memoryPool.isCapturing else {
                throw CUDAError.graphCapture(
                    context: "fast W4A4 layers on a new stream",
                    reason: "its cuBLASLt workspace and weight slots cannot be allocated during a capture; call lane(for:) before capturing")
            }
            let lane = try CUDAW4A4FastLane(context: context, stream: stream, prefetchWeights: prefetching, tuneGEMMs: tuning)
            if largestFoldedBytes > 0 { try lane.prefetcher.reserve(byteCount: largestFoldedBytes, stream: context.defaultStream) }
            lanes.append(lane)
            return lane
        }
    }

    /// Makes every lane's prefetch slots hold at least `byteCount` bytes (called when a layer is made).
    func reserveWeights(byteCount: Int, stream: CUDAStream) throws {
        try lock.withLock {
            largestFoldedBytes = max(largestFoldedBytes, byteCount)
            for lane in lanes { try lane.prefetcher.reserve(byteCount: byteCount, stream: stream) }
        }
    }

    private var allLanes: [CUDAW4A4FastLane] { lock.withLock { lanes } }

    /// Whether a layer's forward queues the weight expansion of the layer that follows it in its lane's order on
    /// a side stream (the results are bit for bit the same). Off (the default): each forward expands its own weights
    /// in line, right before its GEMM. Since the expansion folds the low-rank branch in (session 9), the prefetch no
    /// longer pays in FLUX's step: 84.0 / 84.3 ms with it against 81.9 / 82.5 ms in line at 1024² on an H200
    /// (docs/hopper.md, "Session 10"): the side stream's expansions compete with the GEMMs and attention they were
    /// meant to hide behind.
    public var prefetchesWeights: Bool {
        get { lock.withLock { prefetching } }
        set {
            lock.withLock { prefetching = newValue }
            for lane in allLanes { lane.prefetcher.isEnabled = newValue }
        }
    }

    /// Whether rank-32 layers (FLUX's) expand their weights with the Hopper kernels (`w4a4_fp8_weights.cu`'s
    /// `_wgmma_…_r32`: 0.99–1.42× the mma.sync ones for INT4, 1.13–1.50× for NVFP4 on an H100). On by default where
    /// the kernels are built for sm_90a; elsewhere it stays off whatever is set.
    public var expandsWithWGMMA: Bool {
        get { lock.withLock { wgmmaExpansion } }
        set { lock.withLock { wgmmaExpansion = newValue && hasWGMMAExpansion } }
    }

    /// Whether a layer's in-line weight expansion on the Hopper kernels (`expandsWithWGMMA`) is launched as a
    /// programmatic dependent of the kernel queued before it (`CUDAKernel.launch(…overlappingPredecessor:)`): its
    /// blocks start as that kernel's blocks finish, load the layer's 4-bit weights and compute the low-rank tile,
    /// and wait for that kernel to complete only before their first store (the scratch may still be read by it). On
    /// by default; the results are bit for bit the same. Expansions on the prefetch side streams launch plainly.
    public var launchesExpansionsEarly: Bool {
        get { lock.withLock { earlyExpansion } }
        set { lock.withLock { earlyExpansion = newValue } }
    }

    /// Whether the models that hold these layers queue the weight expansions of the layers that follow an attention
    /// (FLUX: its out-projections) right before the attention kernel, on the low-priority side streams (`prefetchWeights(of:forwardOn:after:)`),
    /// instead of in line before their GEMMs (on by default; ignored while `prefetchesWeights` is on). The
    /// attention's persistent grid runs its units in rounds, and at FLUX's sizes the last round leaves many
    /// multiprocessors idle (1024²: 864 units on 132 of an H100's, the 7th round on 72); the expansions take those.
    public var expandsBesideAttention: Bool {
        get { lock.withLock { attentionOverlap } }
        set { lock.withLock { attentionOverlap = newValue } }
    }

    /// Queues `layer`'s weight expansion now, on the low-priority side stream of the lane of `stream` (the stream
    /// `layer`'s next forward runs on), after the work queued on `origin` so far; that forward then reads it instead
    /// of expanding in line. The expansion's blocks take only the multiprocessors that the kernels queued next on
    /// other streams leave free. Call it right before work that leaves multiprocessors idle, on a stream whose queued
    /// work already follows the earlier forwards on `stream`. Does nothing while `prefetchesWeights` is on.
    public func prefetchWeights(of layer: CUDASVDQW4A4FastLinear, forwardOn stream: CUDAStream, after origin: CUDAStream) throws {
        try lane(for: stream).prefetcher.request(layer, after: origin)
    }

    /// Whether layers made to share one activation pass (`CUDAW4A4FastSharedInput`) use it in the models that hold
    /// them (on by default). Off: each runs its own passes (the same layout, so a baseline for what sharing saves).
    public var sharesInputPasses: Bool {
        get { lock.withLock { sharedInputs } }
        set { lock.withLock { sharedInputs = newValue } }
    }

    /// Whether the models that hold fast layers reading an fp8 attention's output have the attention kernel write
    /// those layers' codes (`CUDAContext.attentionFP8(_:keyMask:codes:tables:splitToken:)`: no 16-bit output and no
    /// activation pass) instead of running their own activation pass (on by default; off: a baseline). On an H200 the
    /// codes kernel takes 0.308 ms where the 16-bit one takes 0.300 ms at FLUX's 24 × 4608, against the 13 µs pass
    /// it saves (docs/hopper.md, "Session 10").
    public var quantizesInAttention: Bool {
        get { lock.withLock { attentionCodes } }
        set { lock.withLock { attentionCodes = newValue } }
    }

    /// Whether the models that hold these layers let a LayerNorm feeding a layer write its e4m3 codes in the same
    /// kernel (`CUDAContext.layerNorm(_:modulation:eps:quantizedFor:stream:)`, `W4A4FastInputPass.quantizedByNorms`)
    /// instead of a 16-bit output that the layer's activation pass then reads (on by default; the codes are the same
    /// bit for bit). Off: a baseline for what the fusion saves.
    public var quantizesInNorms: Bool {
        get { lock.withLock { normQuantization } }
        set { lock.withLock { normQuantization = newValue } }
    }

    /// Where the FP8 GEMM uses cuBLASLt's fast accumulation (`FP8Accumulation.standard` by default); applies from the
    /// next forward.
    public var accumulation: FP8Accumulation {
        get { lock.withLock { fp8Accumulation } }
        set { lock.withLock { fp8Accumulation = newValue } }
    }

    /// Whether each cuBLASLt shape of the fast layers' FP8 GEMMs, on its first call outside a
    /// graph capture, times cuBLASLt's first `CUBLASLtMatmul.tuningCandidates` proposed algorithms on its operands
    /// and keeps the fastest (on by default, as for `CUDAGEMM`; up to 8 × 7 launches once per shape and lane). Off:
    /// the heuristic's first proposal. Applies to shapes not run yet. cuBLASLt 13.1 proposes a single algorithm for
    /// the outer-vector-scaled FP8 products at FLUX's shapes (`fp8TuningLog`, docs/hopper.md "Session 16"), so on it
    /// there is nothing to time.
    public var tunesGEMMs: Bool {
        get { lock.withLock { tuning } }
        set {
            lock.withLock { tuning = newValue }
            for lane in allLanes { lane.cublasLt.tunes = newValue }
        }
    }

    /// How many weight expansions were queued ahead of their layer on a side stream so far (all lanes).
    public var prefetchedExpansions: Int { allLanes.reduce(0) { $0 + $1.prefetcher.prefetchCount } }

    /// The cuBLASLt version in use.
    public var cublasLtVersion: String { allLanes[0].cublasLt.library.version }

    /// What the FP8 GEMMs' tuning (`tunesGEMMs`) measured so far, lane by lane: per problem a line naming it, then
    /// one per candidate algorithm with its best time and cuBLASLt configuration, `*` on the one kept.
    public var fp8TuningLog: [String] { allLanes.flatMap(\.cublasLt.tuningLog) }

    /// `output[M, N] = (codes[M, K]·weightsᵀ[N, K]) · rowScales[m] · columnScales[n] (+ bias[n])`, then GELU when
    /// `gelu` is set (on the fp32 value, before rounding), plus `output`'s previous values when `accumulate` is set
    /// (before the rounding too); e4m3 operands, fp32 accumulation, output and bias in
    /// `output.dtype`; `weights` holds the [N, K] e4m3 codes at its start (it may be larger: a prefetch slot).
    func fp8Product(codes: DeviceTensor, weights: DeviceBuffer, rowScales: DeviceTensor, columnScales: DeviceTensor,
                    bias: DeviceTensor?, gelu: Bool, accumulate: Bool, output: DeviceTensor, stream: CUDAStream) throws {
        let (m, k) = (codes.shape[0], codes.shape[1])
        let problem = CUBLASLtProblem(m: m, n: output.shape[1], k: k, dtype: output.dtype, hasBias: bias != nil, gelu: gelu,
                                      fp8: .init(fastAccumulation: accumulation.isFast(depth: k)), accumulate: accumulate)
        try lane(for: stream).cublasLt.run(problem, x: codes.buffer.address, weight: weights.address, bias: bias?.buffer.address,
                                           scales: (weight: columnScales.buffer.address, x: rowScales.buffer.address),
                                           output: output.buffer.address, stream: stream)
    }
}

/// The part of a `CUDAW4A4FastEngine` that the fast layers called on one stream use alone: the cuBLASLt workspace
/// every GEMM writes, and the weight prefetcher with its slots, side stream and learned layer order.
public final class CUDAW4A4FastLane: Sendable {
    /// The stream whose layers use this lane.
    public let stream: CUDAStream
    let cublasLt: CUBLASLtMatmul
    let prefetcher: CUDAW4A4WeightPrefetcher

    init(context: CUDAContext, stream: CUDAStream, prefetchWeights: Bool, tuneGEMMs: Bool) throws {
        self.stream = stream
        cublasLt = try CUBLASLtMatmul(context: context, tunes: tuneGEMMs)
        prefetcher = try CUDAW4A4WeightPrefetcher(context: context, enabled: prefetchWeights)
    }
}
