// attention_wgmma.cu: scaled dot-product attention softmax(Q·Kᵀ/√d)·V for Hopper (sm_90a) on warpgroup MMA.
//
// Same contract as attention_fa2.cu: q [B, Sq, H, D], k and v [B, Skv, H, D], o [B, Sq, H, D], one 16-bit format
// (bf16 or f16); optional key-padding mask [B, Skv] of bytes (0 = ignore the key); float32 accumulation, online
// softmax in base 2 with the 1/√d scale folded into the exponent (`scaleLog2`), P rounded to the input format
// before P·V; any Sq and Skv (tails zero-filled and masked); a query whose keys are all masked gets zeros.
//
// A block owns 128 queries of one (sample, head) and has 9 warps:
//   - warps 0-7 are two consumer warpgroups of 64 queries each. A warpgroup keeps its Q tile in shared memory and
//     walks the keys in tiles of 128: S = Q·Kᵀ (wgmma m64n128k16, both operands from shared memory), online softmax
//     on the float32 accumulators in registers, then O += P·V (wgmma with P from registers, V transposed from
//     shared memory). The two warpgroups run independently, so one's softmax overlaps the other's matrix products.
//   - warp 8 is the producer: it copies K and V tiles into a ring of `kStages` shared-memory stages with 16-byte
//     cp.async (zero-filled past Skv), waits for its own copies, fences them into the async proxy and arrives on the
//     stage's `full` mbarrier; consumers arrive on the stage's `empty` mbarrier once their P·V has read it.
// Shared tiles use the 128-byte swizzle (attention_wgmma.cuh): a [rows][D] tile is D/64 blocks of [rows][64].
#include "attention_wgmma.cuh"

namespace {

constexpr int kConsumerGroups = 2;
constexpr int kQueriesPerGroup = 64;
constexpr int kQueriesPerBlock = kConsumerGroups * kQueriesPerGroup;
constexpr int kKeysPerTile = 128;
constexpr int kStages = 3;
constexpr int kConsumerThreads = kConsumerGroups * 128;
constexpr int kThreads = kConsumerThreads + 32;

#if defined(NK_HAS_WGMMA)

/// −∞ as a float (the score of a masked key).
NK_DEVICE float negative_infinity() { return __uint_as_float(0xFF800000u); }

/// Byte offset of 16-byte chunk `chunk` (of D/8) of row `row` in a swizzled [rows][D] tile.
template <int Rows>
NK_DEVICE u32 swizzled_offset(int row, int chunk) {
    return (u32)((chunk >> 3) * Rows * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
}

/// The shared-memory plan of one block (byte offsets from a 1024-byte aligned base).
template <int D>
struct Plan {
    static constexpr u32 queryTileBytes = kQueriesPerGroup * D * 2;
    static constexpr u32 keyTileBytes = kKeysPerTile * D * 2;
    static constexpr u32 queries = 0;                                          // [2][64][D]
    static constexpr u32 keys = queries + kConsumerGroups * queryTileBytes;    // [kStages][128][D]
    static constexpr u32 values = keys + kStages * keyTileBytes;               // [kStages][128][D]
    static constexpr u32 full = values + kStages * keyTileBytes;               // kStages mbarriers
    static constexpr u32 empty = full + kStages * 8;                           // kStages mbarriers
    static constexpr u32 bytes = empty + kStages * 8;  // the launcher asks for this + 1024 (alignment slack)
};

/// Copies `Rows` rows of `source` (rows `firstRow`…, `rowStride` elements apart, `validRows` of them inside the
/// tensor) into a swizzled tile, `threads` threads starting at `thread`; rows past `validRows` are zero-filled.
template <int Rows, int D, int Threads>
NK_DEVICE void copy_tile(u32 tileAddress, const u16* source, int firstRow, int validRows, int rowStride, int thread) {
    constexpr int chunksPerRow = D / 8;
    constexpr int chunksPerThread = Rows * chunksPerRow / Threads;
    static_assert(Threads % chunksPerRow == 0, "a thread keeps its chunk column");
#pragma unroll 8
    for (int i = 0; i < chunksPerThread; ++i) {
        const int index = thread + i * Threads;
        const int row = index / chunksPerRow;
        const int chunk = index % chunksPerRow;
        const bool valid = firstRow + row < validRows;
        const u16* from = valid ? source + (i64)(firstRow + row) * rowStride + chunk * 8 : source;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                     :: "r"(tileAddress + swizzled_offset<Rows>(row, chunk)), "l"(from), "r"(valid ? 16 : 0) : "memory");
    }
}

/// The producer warp: K and V tiles into the stage ring.
template <int D>
NK_DEVICE void produce(u32 base, const u16* k, const u16* v, i64 keyBase, int keyTokens, int rowStride, int tiles) {
    using P = Plan<D>;
    const int lane = threadIdx.x & 31;
    for (int tile = 0; tile < tiles; ++tile) {
        const int stage = tile % kStages;
        if (tile >= kStages) nk_mbarrier_wait(base + P::empty + stage * 8, ((tile / kStages) - 1) & 1);
        const int firstKey = tile * kKeysPerTile;
        copy_tile<kKeysPerTile, D, 32>(base + P::keys + stage * P::keyTileBytes, k + keyBase, firstKey, keyTokens, rowStride, lane);
        copy_tile<kKeysPerTile, D, 32>(base + P::values + stage * P::keyTileBytes, v + keyBase, firstKey, keyTokens, rowStride, lane);
        nk_cp_async_commit();
        if (tile > 0) {
            // The previous tile's copies are done: publish them while this tile's are in flight.
            nk_cp_async_wait<1>();
            nk_fence_proxy_async();
            nk_mbarrier_arrive(base + P::full + ((tile - 1) % kStages) * 8);
        }
    }
    nk_cp_async_wait<0>();
    nk_fence_proxy_async();
    nk_mbarrier_arrive(base + P::full + ((tiles - 1) % kStages) * 8);
}

/// P·V for one key tile: eight k-steps of 16 keys.
template <class T, int D>
NK_DEVICE void multiply_values(float (&output)[D / 2], const u32 (&weights)[8][4], u32 valueTile) {
#pragma unroll
    for (int step = 0; step < 8; ++step) {
        // Keys 16·step…: two 8-row groups (SBO 1024 bytes) per step; D/64 column blocks (LBO one block).
        const u64 b = nk_wgmma_descriptor(valueTile + step * 2048, kKeysPerTile * 128, 1024);
        if constexpr (D == 128) {
            nk_wgmma_rs_n128<T>(output, weights[step], b, 1);
        } else {
            nk_wgmma_rs_n64<T>(output, weights[step], b, 1);
        }
    }
}

/// A consumer warpgroup: its 64 queries against every key tile.
template <class T, int D>
NK_DEVICE void consume(u32 base, const u16* q, u16* o, const u8* sampleMask, i64 queryBase, int firstQuery, int queryTokens,
                       int keyTokens, int rowStride, int tiles, float scaleLog2) {
    using P = Plan<D>;
    const int group = threadIdx.x / 128;
    const int thread = threadIdx.x % 128;
    const int warp = thread / 32;
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2;
    const int t = lane & 3;

    // This warpgroup's Q tile (rows past Sq zero-filled), visible to wgmma before the first product.
    const u32 queryTile = base + P::queries + group * P::queryTileBytes;
    copy_tile<kQueriesPerGroup, D, 128>(queryTile, q + queryBase, firstQuery, queryTokens, rowStride, thread);
    nk_cp_async_commit();
    nk_cp_async_wait<0>();
    nk_fence_proxy_async();
    nk_named_barrier(1 + group, 128);

    float output[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; ++i) output[i] = 0.0f;
    // Running maximum (scaled to base 2) and this thread's partial sum of weights for rows g and g + 8.
    float rowMax[2] = {negative_infinity(), negative_infinity()};
    float rowSum[2] = {0.0f, 0.0f};

    for (int tile = 0; tile < tiles; ++tile) {
        const int stage = tile % kStages;
        nk_mbarrier_wait(base + P::full + stage * 8, (tile / kStages) & 1);
        const u32 keyTile = base + P::keys + stage * P::keyTileBytes;
        const u32 valueTile = base + P::values + stage * P::keyTileBytes;

        // S = Q·Kᵀ (64 queries × 128 keys), D/16 k-steps of 16 head dimensions.
        float scores[64];
        nk_wgmma_pin(output);
        nk_wgmma_fence();
#pragma unroll
        for (int step = 0; step < D / 16; ++step) {
            // Column block step / 4 of the tiles, then +32 bytes per 16 head dimensions inside the 128-byte rows.
            const u32 within = (step & 3) * 32;
            const u64 a = nk_wgmma_descriptor(queryTile + (step >> 2) * kQueriesPerGroup * 128 + within, 16, 1024);
            const u64 b = nk_wgmma_descriptor(keyTile + (step >> 2) * kKeysPerTile * 128 + within, 16, 1024);
            nk_wgmma_ss_n128<T>(scores, a, b, step > 0);
        }
        nk_wgmma_commit();
        nk_wgmma_wait<0>();
        nk_wgmma_pin(scores);

        // Mask keys past the end or masked out; the running maxima in base 2.
        const int firstKey = tile * kKeysPerTile;
        if (firstKey + kKeysPerTile > keyTokens || sampleMask) {
#pragma unroll
            for (int i = 0; i < 16; ++i) {
#pragma unroll
                for (int c = 0; c < 4; ++c) {
                    const int key = firstKey + 8 * i + 2 * t + (c & 1);
                    const bool allowed = key < keyTokens && (!sampleMask || sampleMask[key] != 0);
                    if (!allowed) scores[4 * i + c] = negative_infinity();
                }
            }
        }
        float reference[2];
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            float tileMax = negative_infinity();
#pragma unroll
            for (int i = 0; i < 16; ++i) tileMax = fmaxf(tileMax, fmaxf(scores[4 * i + 2 * half], scores[4 * i + 2 * half + 1]));
            // The four lanes of a quad hold one row's 128 scores between them.
            tileMax = fmaxf(tileMax, __shfl_xor_sync(0xFFFFFFFFu, tileMax, 1));
            tileMax = fmaxf(tileMax, __shfl_xor_sync(0xFFFFFFFFu, tileMax, 2));
            const float newMax = fmaxf(rowMax[half], tileMax * scaleLog2);
            // With every key so far masked the maximum is −∞; exponentiate against 0 so the weights are 0, not NaN.
            reference[half] = newMax == negative_infinity() ? 0.0f : newMax;
            const float correction = exp2f(rowMax[half] - reference[half]);
            rowMax[half] = newMax;
            rowSum[half] *= correction;
#pragma unroll
            for (int i = 0; i < D / 8; ++i) {
                output[4 * i + 2 * half] *= correction;
                output[4 * i + 2 * half + 1] *= correction;
            }
        }

        // P = 2^(S·scale − max), rounded to the input format as A fragments of 16 keys each.
        u32 weights[8][4];
#pragma unroll
        for (int step = 0; step < 8; ++step) {
            float p[8];
#pragma unroll
            for (int c = 0; c < 8; ++c) {
                const int half = (c >> 1) & 1;
                p[c] = exp2f(fmaf(scores[8 * step + c], scaleLog2, -reference[half]));
                rowSum[half] += p[c];
            }
            weights[step][0] = T::pack2(p[0], p[1]);
            weights[step][1] = T::pack2(p[2], p[3]);
            weights[step][2] = T::pack2(p[4], p[5]);
            weights[step][3] = T::pack2(p[6], p[7]);
        }
        nk_wgmma_pin(output);
        nk_wgmma_fence();
        multiply_values<T, D>(output, weights, valueTile);
        nk_wgmma_commit();
        // Waiting here (not at the next tile's S) keeps ptxas from serialising the wgmma pipeline (C7515); the
        // other warpgroup keeps the tensor cores busy meanwhile.
        nk_wgmma_wait<0>();
        nk_wgmma_pin(output);
        nk_mbarrier_arrive(base + P::empty + stage * 8);
    }

    // Normalise by the full row sums (summed over the quad) and store rows inside the sequence.
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        rowSum[half] += __shfl_xor_sync(0xFFFFFFFFu, rowSum[half], 1);
        rowSum[half] += __shfl_xor_sync(0xFFFFFFFFu, rowSum[half], 2);
        const float inverse = rowSum[half] > 0.0f ? 1.0f / rowSum[half] : 0.0f;
        const int row = firstQuery + 16 * warp + g + 8 * half;
        if (row >= queryTokens) continue;
        u16* destination = o + queryBase + (i64)row * rowStride + 2 * t;
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
            *reinterpret_cast<u32*>(destination + 8 * i) =
                T::pack2(output[4 * i + 2 * half] * inverse, output[4 * i + 2 * half + 1] * inverse);
        }
    }
}

template <class T, int D>
NK_DEVICE void attention(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,
                         u16* __restrict__ o, const u8* __restrict__ keyMask, int queryTokens, int keyTokens, int heads,
                         float scaleLog2) {
    using P = Plan<D>;
    extern __shared__ __align__(1024) u8 sharedBytes[];
    // The swizzle works on address bits 4-9: align the plan to 1024 bytes (the launcher adds the slack).
    const u32 raw = nk_shared_address(sharedBytes);
    const u32 base = (raw + 1023u) & ~1023u;

    const int head = blockIdx.y;
    const int sample = blockIdx.z;
    const int rowStride = heads * D;
    const i64 queryBase = (i64)sample * queryTokens * rowStride + (i64)head * D;
    const i64 keyBase = (i64)sample * keyTokens * rowStride + (i64)head * D;
    const int tiles = (keyTokens + kKeysPerTile - 1) / kKeysPerTile;

    if (threadIdx.x == 0) {
        for (int stage = 0; stage < kStages; ++stage) {
            nk_mbarrier_init(base + P::full + stage * 8, 32);
            nk_mbarrier_init(base + P::empty + stage * 8, kConsumerThreads);
        }
    }
    __syncthreads();

    if (threadIdx.x >= kConsumerThreads) {
        produce<D>(base, k, v, keyBase, keyTokens, rowStride, tiles);
    } else {
        const int firstQuery = blockIdx.x * kQueriesPerBlock + (threadIdx.x / 128) * kQueriesPerGroup;
        const u8* sampleMask = keyMask ? keyMask + (i64)sample * keyTokens : nullptr;
        consume<T, D>(base, q, o, sampleMask, queryBase, firstQuery, queryTokens, keyTokens, rowStride, tiles, scaleLog2);
    }
}

#define NK_ATTENTION_BODY(T, D) attention<T, D>(q, k, v, o, keyMask, queryTokens, keyTokens, heads, scaleLog2)
#else
// Not sm_90a: the host dispatches to this file's kernels only on sm_90a (AttentionGeometry.usesWGMMA), so here
// they trap instead of computing.
#define NK_ATTENTION_BODY(T, D) __trap()
#endif

}  // namespace

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_bf16_d64(
    const u16* q, const u16* k, const u16* v, u16* o, const u8* keyMask, int queryTokens, int keyTokens, int heads, float scaleLog2) {
    NK_ATTENTION_BODY(nk_bf16, 64);
}

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_bf16_d128(
    const u16* q, const u16* k, const u16* v, u16* o, const u8* keyMask, int queryTokens, int keyTokens, int heads, float scaleLog2) {
    NK_ATTENTION_BODY(nk_bf16, 128);
}

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_f16_d64(
    const u16* q, const u16* k, const u16* v, u16* o, const u8* keyMask, int queryTokens, int keyTokens, int heads, float scaleLog2) {
    NK_ATTENTION_BODY(nk_f16, 64);
}

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_f16_d128(
    const u16* q, const u16* k, const u16* v, u16* o, const u8* keyMask, int queryTokens, int keyTokens, int heads, float scaleLog2) {
    NK_ATTENTION_BODY(nk_f16, 128);
}
