// attention_fa2.cu: scaled dot-product attention softmax(Q·Kᵀ/√d)·V, FlashAttention-2 style.
//
// Shared memory (dynamic, set by the launcher): K and V tiles of 64 keys, two stages each, rows padded to D + 8
// elements so ldmatrix reads are free of bank conflicts: 4·64·(D + 8)·2 bytes (69,632 for D = 128).
// Layout: q [B, Sq, H, D], k and v [B, Skv, H, D], o [B, Sq, H, D] (a projection's output viewed as heads), one
// 16-bit format (bf16 or f16) for all four; optional key-padding mask [B, Skv] of bytes (0 = ignore the key).
// A block of 4 warps owns 64 queries of one (sample, head); each warp keeps its 16 query rows' Q fragments and
// output accumulators in registers and walks the keys in tiles of 64, double-buffered in shared memory by cp.async:
// S = Q·Kᵀ on tensor cores (mma.sync m16n8k16, float32 accumulators), online softmax in float32 (base 2, the
// 1/√d scale folded into the exponent), P rounded to the input format, O += P·V on tensor cores. Queries and keys
// past the sequence ends are zero-filled and masked, so any Sq and Skv work. A query whose keys are all masked
// gets a zero output.
#include "ops_mma.cuh"

namespace {

constexpr int kWarps = 4;
constexpr int kQueriesPerBlock = 16 * kWarps;
constexpr int kKeysPerTile = 64;

/// −∞ as a float (the score of a masked key).
NK_DEVICE float negative_infinity() { return __uint_as_float(0xFF800000u); }

/// Starts the copy of key tile `tile` of `source` (k or v) into `destination` ([64][D + 8]).
template <int D>
NK_DEVICE void load_tile(u16* destination, const u16* source, i64 sampleBase, int tile, int keyTokens, int rowStride) {
    constexpr int chunksPerRow = D / 8;
    constexpr int chunksPerThread = kKeysPerTile * chunksPerRow / (kWarps * 32);
#pragma unroll
    for (int i = 0; i < chunksPerThread; ++i) {
        const int chunk = threadIdx.x + i * kWarps * 32;
        const int row = chunk / chunksPerRow;
        const int part = chunk % chunksPerRow;
        const int key = tile * kKeysPerTile + row;
        const bool valid = key < keyTokens;
        const u16* from = valid ? source + sampleBase + (i64)key * rowStride + part * 8 : source;
        nk_cp_async_16(destination + row * (D + 8) + part * 8, from, valid);
    }
}

template <class T, int D>
NK_DEVICE void attention(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,
                         u16* __restrict__ o, const u8* __restrict__ keyMask, int queryTokens, int keyTokens,
                         int heads, float scaleLog2) {
    extern __shared__ uint4 sharedWords[];
    u16* shared = reinterpret_cast<u16*>(sharedWords);
    constexpr int tileElements = kKeysPerTile * (D + 8);
    u16* keyTiles = shared;                      // [2][64][D + 8]
    u16* valueTiles = shared + 2 * tileElements; // [2][64][D + 8]

    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int t = lane & 3;
    const int head = blockIdx.y;
    const int sample = blockIdx.z;
    const int rowStride = heads * D;
    const i64 queryBase = (i64)sample * queryTokens * rowStride + (i64)head * D;
    const i64 keyBase = (i64)sample * keyTokens * rowStride + (i64)head * D;
    const int firstQuery = blockIdx.x * kQueriesPerBlock + warp * 16;
    const u8* sampleMask = keyMask ? keyMask + (i64)sample * keyTokens : nullptr;

    // This warp's Q rows as A fragments (rows past the end read as zero).
    u32 queryFragments[D / 16][4];
    {
        const int rowLow = firstQuery + g;
        const int rowHigh = rowLow + 8;
#pragma unroll
        for (int step = 0; step < D / 16; ++step) {
            const int column = step * 16 + 2 * t;
            const u32* low = reinterpret_cast<const u32*>(q + queryBase + (i64)rowLow * rowStride + column);
            const u32* high = reinterpret_cast<const u32*>(q + queryBase + (i64)rowHigh * rowStride + column);
            queryFragments[step][0] = rowLow < queryTokens ? low[0] : 0u;
            queryFragments[step][1] = rowHigh < queryTokens ? high[0] : 0u;
            queryFragments[step][2] = rowLow < queryTokens ? low[4] : 0u;
            queryFragments[step][3] = rowHigh < queryTokens ? high[4] : 0u;
        }
    }

    float output[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; ++j) output[j][0] = output[j][1] = output[j][2] = output[j][3] = 0.0f;
    // Running maximum (base-2 scaled scores) and partial sum of weights for rows g and g + 8.
    float rowMax[2] = {negative_infinity(), negative_infinity()};
    float rowSum[2] = {0.0f, 0.0f};

    const int tiles = (keyTokens + kKeysPerTile - 1) / kKeysPerTile;
    load_tile<D>(keyTiles, k, keyBase, 0, keyTokens, rowStride);
    load_tile<D>(valueTiles, v, keyBase, 0, keyTokens, rowStride);
    nk_cp_async_commit();

    for (int tile = 0; tile < tiles; ++tile) {
        const int stage = tile & 1;
        if (tile + 1 < tiles) {
            load_tile<D>(keyTiles + (stage ^ 1) * tileElements, k, keyBase, tile + 1, keyTokens, rowStride);
            load_tile<D>(valueTiles + (stage ^ 1) * tileElements, v, keyBase, tile + 1, keyTokens, rowStride);
        }
        nk_cp_async_commit();
        nk_cp_async_wait<1>();
        __syncthreads();
        const u16* keyTile = keyTiles + stage * tileElements;
        const u16* valueTile = valueTiles + stage * tileElements;

        // S = Q·Kᵀ for 16 rows × 64 keys: eight 16×8 accumulator tiles.
        float scores[8][4];
#pragma unroll
        for (int j = 0; j < 8; ++j) scores[j][0] = scores[j][1] = scores[j][2] = scores[j][3] = 0.0f;
#pragma unroll
        for (int step = 0; step < D / 16; ++step) {
#pragma unroll
            for (int pair = 0; pair < 4; ++pair) {
                u32 b[4];
                const int key = pair * 16 + (lane >> 4) * 8 + (lane & 7);
                const int column = step * 16 + ((lane >> 3) & 1) * 8;
                nk_ldmatrix_x4(b, keyTile + key * (D + 8) + column);
                nk_mma_16816<T>(scores[2 * pair], queryFragments[step], b[0], b[1]);
                nk_mma_16816<T>(scores[2 * pair + 1], queryFragments[step], b[2], b[3]);
            }
        }

        // Scale to base 2, mask keys past the end or masked out, and update the running maxima.
        float tileMax[2] = {negative_infinity(), negative_infinity()};
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int key = tile * kKeysPerTile + j * 8 + 2 * t + (c & 1);
                const bool allowed = key < keyTokens && (!sampleMask || sampleMask[key] != 0);
                scores[j][c] = allowed ? scores[j][c] * scaleLog2 : negative_infinity();
                tileMax[c >> 1] = fmaxf(tileMax[c >> 1], scores[j][c]);
            }
        }
        float correction[2];
        float reference[2];
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            // The four lanes of a quad hold one row's 64 scores between them.
            tileMax[half] = fmaxf(tileMax[half], __shfl_xor_sync(0xFFFFFFFFu, tileMax[half], 1));
            tileMax[half] = fmaxf(tileMax[half], __shfl_xor_sync(0xFFFFFFFFu, tileMax[half], 2));
            const float newMax = fmaxf(rowMax[half], tileMax[half]);
            // With every key so far masked the maximum is −∞; exponentiate against 0 so the weights are 0, not NaN.
            reference[half] = newMax == negative_infinity() ? 0.0f : newMax;
            correction[half] = exp2f(rowMax[half] - reference[half]);
            rowMax[half] = newMax;
            rowSum[half] *= correction[half];
        }
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
            output[j][0] *= correction[0];
            output[j][1] *= correction[0];
            output[j][2] *= correction[1];
            output[j][3] *= correction[1];
        }

        // P = 2^(S − max) as A fragments (16 keys each), and O += P·V.
#pragma unroll
        for (int chunk = 0; chunk < 4; ++chunk) {
            float p[2][4];
#pragma unroll
            for (int side = 0; side < 2; ++side) {
#pragma unroll
                for (int c = 0; c < 4; ++c) {
                    p[side][c] = exp2f(scores[2 * chunk + side][c] - reference[c >> 1]);
                    rowSum[c >> 1] += p[side][c];
                }
            }
            const u32 weights[4] = {T::pack2(p[0][0], p[0][1]), T::pack2(p[0][2], p[0][3]),
                                    T::pack2(p[1][0], p[1][1]), T::pack2(p[1][2], p[1][3])};
#pragma unroll
            for (int pair = 0; pair < D / 16; ++pair) {
                u32 b[4];
                const int key = chunk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
                const int column = pair * 16 + (lane >> 4) * 8;
                nk_ldmatrix_x4_trans(b, valueTile + key * (D + 8) + column);
                nk_mma_16816<T>(output[2 * pair], weights, b[0], b[1]);
                nk_mma_16816<T>(output[2 * pair + 1], weights, b[2], b[3]);
            }
        }
        __syncthreads();  // the next iteration's copies overwrite the stage just read
    }

    // Normalise by the full row sums (summed over the quad) and store rows inside the sequence.
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        rowSum[half] += __shfl_xor_sync(0xFFFFFFFFu, rowSum[half], 1);
        rowSum[half] += __shfl_xor_sync(0xFFFFFFFFu, rowSum[half], 2);
    }
    const float inverse[2] = {rowSum[0] > 0.0f ? 1.0f / rowSum[0] : 0.0f, rowSum[1] > 0.0f ? 1.0f / rowSum[1] : 0.0f};
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int row = firstQuery + g + 8 * half;
        if (row >= queryTokens) continue;
        u16* destination = o + queryBase + (i64)row * rowStride + 2 * t;
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
            *reinterpret_cast<u32*>(destination + j * 8) =
                T::pack2(output[j][2 * half] * inverse[half], output[j][2 * half + 1] * inverse[half]);
        }
    }
}

}  // namespace

NK_KERNEL void nunchaku_attention_bf16_d64(const u16* q, const u16* k, const u16* v, u16* o, const u8* keyMask, int queryTokens,
                                           int keyTokens, int heads, float scaleLog2) {
    attention<nk_bf16, 64>(q, k, v, o, keyMask, queryTokens, keyTokens, heads, scaleLog2);
}

NK_KERNEL void nunchaku_attention_bf16_d128(const u16* q, const u16* k, const u16* v, u16* o, const u8* keyMask, int queryTokens,
                                            int keyTokens, int heads, float scaleLog2) {
    attention<nk_bf16, 128>(q, k, v, o, keyMask, queryTokens, keyTokens, heads, scaleLog2);
}

NK_KERNEL void nunchaku_attention_f16_d64(const u16* q, const u16* k, const u16* v, u16* o, const u8* keyMask, int queryTokens,
                                          int keyTokens, int heads, float scaleLog2) {
    attention<nk_f16, 64>(q, k, v, o, keyMask, queryTokens, keyTokens, heads, scaleLog2);
}

NK_KERNEL void nunchaku_attention_f16_d128(const u16* q, const u16* k, const u16* v, u16* o, const u8* keyMask, int queryTokens,
                                           int keyTokens, int heads, float scaleLog2) {
    attention<nk_f16, 128>(q, k, v, o, keyMask, queryTokens, keyTokens, heads, scaleLog2);
}
