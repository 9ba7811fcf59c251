import SVDQuant

/// Which awq_gemv.cu kernel runs an AWQ W4A16 linear of `rows` rows, and its launch geometry.
///
/// One row (the FLUX modulation's temb at batch 1), two rows, or blocks of four rows for anything more: each block
/// streams the codes once for its rows, each warp owning `channelsPerWarp` channels at a time. Measured on an H200
/// (scripts/awq_gemv_bench.py, docs/hopper.md): faster than the earlier one-warp-per-channel kernel at every M tried
/// (1 to 77). Shapes: K a multiple of 64 and N of 4 (checked when the weights are built).
struct AWQGEMVLaunch: Equatable {
    let kernelName: String
    let grid: CUDADim3
    let block: CUDADim3
    /// Dynamic shared memory: the block's rows of x (`rowsPerBlock` · ceil(K / 1024) · 2048 bytes); above
    /// `sharedMemoryLimit` the kernel must be allowed more first.
    let sharedMemoryBytes: Int

    /// Output channels each warp owns at a time (the `C` awq_gemv.cu instantiates).
    static let channelsPerWarp = 2
    /// Warps per block.
    static let warps = 8
    /// Dynamic shared memory every launch may take without opting in.
    static let sharedMemoryLimit = 48 * 1024

    init(rows: Int, outFeatures n: Int, inFeatures k: Int, type: ActivationDType) {
        let steps = (k + 1023) / 1024
        // Four rows per block while their x fits the default shared memory (K ≤ 6144), else fewer.
        var rowsPerBlock = rows == 1 ? 1 : (rows == 2 ? 2 : 4)
        while rowsPerBlock > 1 && rowsPerBlock * steps * 2048 > Self.sharedMemoryLimit { rowsPerBlock /= 2 }
        let channelsPerBlock = Self.warps * Self.channelsPerWarp
        kernelName = "awq_gemv_rows\(rowsPerBlock)_\(type)"
        grid = CUDADim3((n + channelsPerBlock - 1) / channelsPerBlock, (rows + rowsPerBlock - 1) / rowsPerBlock)
        block = CUDADim3(Self.warps * 32)
        sharedMemoryBytes = rowsPerBlock * steps * 2048
    }
}
