import NunchakuCore

/// The attention kernels and how one is chosen for a launch.
///
/// `.wgmma` (`attention_wgmma.cu`: Hopper warpgroup MMA, FlashAttention-3 structure) needs a cubin built for
/// sm_90a and 230,512 bytes of shared memory per block (d = 128); `.fa2` (`attention_fa2.cu`: mma.sync) runs on
/// every supported GPU. Both take the same operands and compute the same function (float32 accumulation and online
/// softmax, P rounded to the input format before P·V).
public enum AttentionKernel: String, Sendable, CaseIterable, CustomStringConvertible {
    case fa2
    case wgmma

    /// The environment variable that overrides the automatic choice: `fa2`, `wgmma` or `auto`.
    public static let environmentVariable = "NUNCHAKU_ATTENTION_KERNEL"

    public var description: String { rawValue }

    /// Whether this kernel can run for kernels built for `target` on a GPU that lets a block use
    /// `sharedMemoryLimit` bytes of shared memory, at head dimension `headDim`.
    public func isAvailable(target: CUDATarget, sharedMemoryLimit: Int, headDim: Int) -> Bool {
        switch self {
        case .fa2:
            return true
        case .wgmma:
            return target.hasHopperWGMMA && AttentionWGMMALaunch.sharedMemoryBytes(headDim: headDim) <= sharedMemoryLimit
        }
    }

    /// The kernel a launch uses: `requested` when given, else the environment's `NUNCHAKU_ATTENTION_KERNEL`, else
    /// the fastest available (`.wgmma` where it can run, `.fa2` otherwise).
    /// - Throws: `NunchakuError.invalidArgument` for an unknown environment value; `NunchakuError.unsupported` when
    ///   the requested kernel cannot run on this GPU (naming the target).
    public static func select(requested: AttentionKernel?, environment: String?, target: CUDATarget,
                              sharedMemoryLimit: Int, headDim: Int) throws -> AttentionKernel {
        var choice = requested
        if choice == nil, let environment, environment != "auto" {
            guard let named = AttentionKernel(rawValue: environment) else {
                throw NunchakuError.invalidArgument(
                    context: environmentVariable, reason: "'\(environment)' is not one of fa2, wgmma, auto")
            }
            choice = named
        }
        guard let choice else {
            return AttentionKernel.wgmma.isAvailable(target: target, sharedMemoryLimit: sharedMemoryLimit, headDim: headDim)
                ? .wgmma : .fa2
        }
        guard choice.isAvailable(target: target, sharedMemoryLimit: sharedMemoryLimit, headDim: headDim) else {
            throw NunchakuError.unsupported(
                context: "attention kernel \(choice)",
                reason: "needs an sm_90a cubin and \(AttentionWGMMALaunch.sharedMemoryBytes(headDim: headDim)) bytes of "
                    + "shared memory per block; kernels here are built for \(target) with \(sharedMemoryLimit) bytes")
        }
        return choice
    }
}

/// The launch shape of `attention_wgmma.cu` (its `Plan`): three warpgroups (two consumers of 64 queries, one
/// producer) per block, each block walking work units of 128 queries on a persistent grid; shared memory for a unit's
/// queries, three stages of 128-key K and V tiles, fourteen mbarriers, and 1024 bytes to align the swizzled tiles.
/// The kernel reads q, k and v through tensor maps.
public enum AttentionWGMMALaunch {
    public static let queriesPerBlock = 128
    public static let threadsPerBlock = 384
    static let keysPerTile = 128
    static let stages = 3
    /// Head dimensions one tensor copy moves: a 128-byte row, the width of the 128-byte swizzle.
    static let columnsPerCopy = 64

    /// Dynamic shared memory per block for head dimension `headDim` (230,512 bytes for 128).
    public static func sharedMemoryBytes(headDim: Int) -> Int {
        let queryTiles = queriesPerBlock * headDim * 2
        let keyValueStages = stages * 2 * keysPerTile * headDim * 2
        return queryTiles + keyValueStages + (2 + 4 * stages) * 8 + 1024
    }

    /// The kernel's work units: one per 128 queries of each (sample, head). The grid has at most one block per
    /// multiprocessor; block b takes units b, b + grid, … (the key/value rings run on from one unit to the next).
    public static func workUnits(batch: Int, queryTokens: Int, heads: Int) -> Int {
        (queryTokens + queriesPerBlock - 1) / queriesPerBlock * heads * batch
    }

    /// The tensor map the kernel reads a contiguous `[B, S, H, d]` operand (`name`: query, key or value) through:
    /// 4-D with dimensions d, H, S, B (innermost first), boxes of 64 head dimensions × 1 head × 128 rows × 1 sample,
    /// the 128-byte swizzle of the kernel's wgmma descriptors; rows past S read as zeros.
    /// - Throws: `CUDAError.invalidArgument` (from `CUDATensorMapLayout`) for a misaligned address or a tensor too
    ///   large for a tensor map.
    public static func tensorMapLayout(name: String, address: CUdeviceptr, shape: [Int], dtype: DType) throws -> CUDATensorMapLayout {
        let (batch, tokens, heads, headDim) = (shape[0], shape[1], shape[2], shape[3])
        let rowBytes = headDim * 2
        return try CUDATensorMapLayout(
            name: "attention \(name) \(shape)", elementType: dtype == .bf16 ? .bfloat16 : .float16, address: address,
            dimensions: [headDim, heads, tokens, batch], strides: [rowBytes, heads * rowBytes, tokens * heads * rowBytes],
            box: [columnsPerCopy, 1, queriesPerBlock, 1], swizzle: .bytes128)
    }
}
