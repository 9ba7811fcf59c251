// gemm_mma.cu: y = x·Wᵀ + bias for 16-bit activations on tensor cores (mma.sync m16n8k16, float32 accumulation).
//
// x [M, K] and W [N, K] row-major (a linear layer's weight as stored), bias [N] or none, y [M, N]; one 16-bit format
// (bf16 or f16) for all. Tiles of 128×128 outputs per block of 8 warps (each 64×32), K in steps of 32 through a
// three-stage cp.async pipeline in shared memory (rows padded by 16 bytes so ldmatrix is free of bank conflicts).
// Rows of x past M and the K tail are zero-filled, so any M works; the launcher checks K % 8 == 0 and N % 8 == 0
// (16-byte rows and paired stores). Shared memory: 3·2·128·40·2 = 61,440 bytes (dynamic, set by the launcher).
#include "ops_mma.cuh"

namespace {

constexpr int kTileM = 128;
constexpr int kTileN = 128;
constexpr int kTileK = 32;
constexpr int kStages = 3;
constexpr int kThreads = 256;
constexpr int kRowElements = kTileK + 8;  // padded shared row
constexpr int kStageElements = (kTileM + kTileN) * kRowElements;

/// Starts copying the K slice `kTile` of the block's x rows and W rows into `stage`.
NK_DEVICE void load_stage(u16* stage, const u16* x, const u16* w, int firstRow, int firstColumn, int kTile, int M,
                          int N, int K) {
    constexpr int chunksPerRow = kTileK / 8;
    constexpr int chunksPerThread = kTileM * chunksPerRow / kThreads;
    const int kStart = kTile * kTileK;
#pragma unroll
    for (int i = 0; i < chunksPerThread; ++i) {
        const int chunk = threadIdx.x + i * kThreads;
        const int row = chunk / chunksPerRow;
        const int part = chunk % chunksPerRow;
        const int k = kStart + part * 8;
        const bool xValid = firstRow + row < M && k < K;
        const bool wValid = firstColumn + row < N && k < K;
        nk_cp_async_16(stage + row * kRowElements + part * 8, xValid ? x + (i64)(firstRow + row) * K + k : x, xValid);
        nk_cp_async_16(stage + (kTileM + row) * kRowElements + part * 8,
                       wValid ? w + (i64)(firstColumn + row) * K + k : w, wValid);
    }
}

template <class T>
NK_DEVICE void gemm(const u16* __restrict__ x, const u16* __restrict__ w, const u16* __restrict__ bias,
                    u16* __restrict__ y, int M, int N, int K) {
    extern __shared__ uint4 sharedWords[];
    u16* shared = reinterpret_cast<u16*>(sharedWords);
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warpRow = (warp >> 2) * 64;  // 2 warps along M
    const int warpColumn = (warp & 3) * 32; // 4 warps along N
    const int firstRow = blockIdx.y * kTileM;
    const int firstColumn = blockIdx.x * kTileN;
    const int kTiles = (K + kTileK - 1) / kTileK;

    float accumulators[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) accumulators[i][j][0] = accumulators[i][j][1] = accumulators[i][j][2] = accumulators[i][j][3] = 0.0f;

#pragma unroll
    for (int stage = 0; stage < kStages - 1; ++stage) {
        if (stage < kTiles) load_stage(shared + stage * kStageElements, x, w, firstRow, firstColumn, stage, M, N, K);
        nk_cp_async_commit();
    }

    for (int kTile = 0; kTile < kTiles; ++kTile) {
        nk_cp_async_wait<kStages - 2>();
        __syncthreads();  // tile kTile has landed for every thread, and every warp is done with the stage refilled next
        const int next = kTile + kStages - 1;
        if (next < kTiles) load_stage(shared + (next % kStages) * kStageElements, x, w, firstRow, firstColumn, next, M, N, K);
        nk_cp_async_commit();

        const u16* xTile = shared + (kTile % kStages) * kStageElements;
        const u16* wTile = xTile + kTileM * kRowElements;
#pragma unroll
        for (int step = 0; step < kTileK / 16; ++step) {
            u32 a[4][4];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int row = warpRow + i * 16 + (lane & 15);
                nk_ldmatrix_x4(a[i], xTile + row * kRowElements + step * 16 + (lane >> 4) * 8);
            }
#pragma unroll
            for (int pair = 0; pair < 2; ++pair) {
                u32 b[4];
                const int column = warpColumn + pair * 16 + (lane >> 4) * 8 + (lane & 7);
                nk_ldmatrix_x4(b, wTile + column * kRowElements + step * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    nk_mma_16816<T>(accumulators[i][2 * pair], a[i], b[0], b[1]);
                    nk_mma_16816<T>(accumulators[i][2 * pair + 1], a[i], b[2], b[3]);
                }
            }
        }
    }
    nk_cp_async_wait<0>();  // no copy may still target shared memory when the block exits

    const int g = lane >> 2;
    const int t = lane & 3;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int column = firstColumn + warpColumn + j * 8 + 2 * t;
        if (column >= N) continue;
        const float biasLow = bias ? T::to_float(bias[column]) : 0.0f;
        const float biasHigh = bias ? T::to_float(bias[column + 1]) : 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int row = firstRow + warpRow + i * 16 + g + 8 * half;
                if (row < M) {
                    *reinterpret_cast<u32*>(y + (i64)row * N + column) =
                        T::pack2(accumulators[i][j][2 * half] + biasLow, accumulators[i][j][2 * half + 1] + biasHigh);
                }
            }
        }
    }
}

}  // namespace

NK_KERNEL void nunchaku_gemm_bf16(const u16* x, const u16* w, const u16* bias, u16* y, int M, int N, int K) {
    gemm<nk_bf16>(x, w, bias, y, M, N, K);
}

NK_KERNEL void nunchaku_gemm_f16(const u16* x, const u16* w, const u16* bias, u16* y, int M, int N, int K) {
    gemm<nk_f16>(x, w, bias, y, M, N, K);
}
