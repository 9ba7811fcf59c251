// attention_wgmma.cu: scaled dot-product attention softmax(Q·Kᵀ/√d)·V for Hopper (sm_90a) on warpgroup MMA.
//
// Same contract as attention_fa2.cu: q [B, Sq, H, D], k and v [B, Skv, H, D], o [B, Sq, H, D], one 16-bit format
// (bf16 or f16); optional key-padding mask [B, Skv] of bytes (0 = ignore the key); float32 accumulation, online
// softmax in base 2 with the 1/√d scale folded into the exponent (`scaleLog2`), P rounded to the input format
// before P·V; any Sq and Skv (tails zero-filled and masked); a query whose keys are all masked gets zeros.
//
// Work comes in units of 128 queries of one (sample, head). The grid is persistent (at most one block per
// multiprocessor, `batch` tells the units apart): block b takes units b, b + gridDim.x, …, and its shared-memory
// rings run on from one unit to the next, so the next unit's tiles load while the current one finishes. A block has
// three warpgroups (FlashAttention-3's structure):
//   - warpgroups 0 and 1 consume, 64 queries each. A consumer keeps its Q tile in shared memory and walks the keys
//     in tiles of 128: S = Q·Kᵀ (wgmma m64n128k16, both operands from shared memory), online softmax on the float32
//     accumulators in registers, O += P·V (wgmma with P from registers, V transposed from shared memory). S of
//     tile j and P·V of tile j − 1 are issued together, then tile j's softmax runs while that P·V is in flight; the
//     two consumers take turns issuing (named barriers), so one's softmax overlaps the other's products.
//   - warpgroup 2 produces, one thread of it: tensor copies (TMA, `cp.async.bulk.tensor`) of each unit's 128 query
//     rows (once both consumers' last S of the previous unit has read the query tile: the `queryEmpty` mbarrier),
//     and of K and V tiles into two rings of `kStages` shared-memory stages, one copy per 64 head dimensions, rows
//     past Sq or Skv zero-filled by the copy engine. Each copy completes on its stage's `full`
//     mbarrier (the producer's arrival announces the tile's bytes). A consumer waits on `full` and, once its S (for
//     K) or its P·V (for V) has read the stage, arrives on the stage's `empty` mbarrier, which the producer waits on
//     before refilling it. The three tensor maps (host: cuTensorMapEncodeTiled, CUDATensorMap.swift) describe q, k
//     and v as 4-D tensors [B][S][H][D] (innermost last) with boxes of 1 × 128 rows × 1 × 64 and the 128-byte swizzle.
//   setmaxnreg moves registers from the producer (24 per thread) to the consumers (240).
// Shared tiles use the 128-byte swizzle (attention_wgmma.cuh): a [rows][D] tile is D/64 blocks of [rows][64].
//
// The float8 variant (entry points `…_fp8_<output>_d128`, `FP8` below; docs/hopper-attention.md) runs the same
// pipeline on e4m3 operands with twice the tensor-core rate: q and k [B, S, H, D] e4m3, v transposed [B, H, D, Spad]
// e4m3 (Spad = Skv rounded up to 16, every wgmma operand of 8-bit type is K-major, and P·V sums over keys), scales
// float32 [3][B][H] (q, k, v: value = code · scale per (sample, head)). The q and k scales go into the softmax
// exponent, the v scale into the final normalisation. P is rounded to e4m3 after shifting the exponent by
// `weightShift` (P ≤ 2^weightShift ≤ 448: small weights keep more bits; the shift cancels in the normalisation). The
// accumulator fragment of S does not have the register layout of an 8-bit A operand (a thread holds keys 2t, 2t + 1,
// 8 + 2t, 9 + 2t of each 16 where the A fragment wants 4t…4t + 3), so instead of moving bytes between lanes the
// producer of v stores each group of 16 keys permuted: position 4t + j holds key (2t, 2t + 1, 8 + 2t, 9 + 2t)[j]
// (attention_fp8_operands.cu), and P's registers pack the accumulator values in that order.
#include "attention_wgmma.cuh"
#include "w4a4_fp8.cuh"

namespace {

constexpr int kConsumerGroups = 2;
constexpr int kQueriesPerGroup = 64;
constexpr int kQueriesPerBlock = kConsumerGroups * kQueriesPerGroup;
constexpr int kKeysPerTile = 128;
// One box shape serves the three tensor maps: 128 rows (a tile of keys, or the block's queries) × 64 columns.
static_assert(kQueriesPerBlock == kKeysPerTile, "the query and key/value tensor maps share their box");
constexpr int kStages = 3;
constexpr int kConsumerThreads = kConsumerGroups * 128;
constexpr int kProducerThreads = 128;
constexpr int kThreads = kConsumerThreads + kProducerThreads;
// Registers per thread after setmaxnreg: the copies need few, the consumers' accumulators many. The block starts
// with 168 per thread (65536 / 384, rounded down to 8) and setmaxnreg.inc only hands out what the producer's
// setmaxnreg.dec gave back, so the consumers' gain must not exceed the producer's loss (else .inc waits forever).
constexpr int kProducerRegisters = 24;
constexpr int kConsumerRegisters = 240;
constexpr int kEntryRegisters = 65536 / kThreads / 8 * 8;
static_assert(kConsumerThreads * (kConsumerRegisters - kEntryRegisters) <= kProducerThreads * (kEntryRegisters - kProducerRegisters),
              "the consumers would wait for registers the producer never returns");

#if defined(NK_HAS_WGMMA)

/// −∞ as a float (the score of a masked key).
NK_DEVICE float negative_infinity() { return __uint_as_float(0xFF800000u); }

/// 2^x by the special-function unit alone (results below 2^-126 flush to 0, which a softmax weight can afford).
NK_DEVICE float exp2_approx(float x) {
    float result;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(result) : "f"(x));
    return result;
}

/// The shared-memory plan of one block (byte offsets from a 1024-byte aligned base). Tiles are blocks of 128 rows
/// × 128 bytes (64 16-bit or 128 e4m3 values); an e4m3 value tile holds 128 keys of D transposed rows.
template <int D, bool FP8>
struct Plan {
    static constexpr int elementBytes = FP8 ? 1 : 2;
    static constexpr int copiesPerTile = D * elementBytes / 128;               // one tensor copy per 128-byte block
    static constexpr u32 queryBytes = kQueriesPerBlock * D * elementBytes;
    static constexpr u32 keyTileBytes = kKeysPerTile * D * elementBytes;
    static constexpr u32 queries = 0;                                          // [copies][128][128 bytes]: both groups' rows
    static constexpr u32 keys = queries + queryBytes;                          // [kStages][copies][128][128 bytes]
    static constexpr u32 values = keys + kStages * keyTileBytes;               // [kStages][copies][128][128 bytes]
    // mbarriers: the queries landed, the queries read by both consumers' last S; kStages each: K or V tile landed
    // (`Full`), read by both consumers (`Empty`).
    static constexpr u32 queryFull = values + kStages * keyTileBytes;
    static constexpr u32 queryEmpty = queryFull + 8;
    static constexpr u32 keyFull = queryEmpty + 8;
    static constexpr u32 keyEmpty = keyFull + kStages * 8;
    static constexpr u32 valueFull = keyEmpty + kStages * 8;
    static constexpr u32 valueEmpty = valueFull + kStages * 8;
    static constexpr u32 bytes = valueEmpty + kStages * 8;
    // The launcher (AttentionWGMMA.swift) asks for bytes + 1024 (alignment slack); an sm_90 block may have 232,448.
    static_assert(bytes + 1024 <= 232448, "shared memory plan too large");
};
static_assert(Plan<128, false>::bytes + 1024 == 230512 && Plan<64, false>::bytes + 1024 == 115824 &&
                  Plan<128, true>::bytes + 1024 == 115824,
              "AttentionWGMMALaunch.sharedMemoryBytes (Swift) must ask for exactly this plan");

/// One block's work: 128 queries of one (sample, head).
struct WorkUnit {
    int queryBlock;
    int head;
    int sample;
};

/// The launch's work units, query blocks fastest (consecutive units share a head's K and V in L2), and the key
/// tiles per unit. Block b takes units b, b + gridDim.x, … (a grid of at most one block per multiprocessor).
struct WorkUnits {
    int queryBlocks;
    int heads;
    int units;
    int tiles;

    NK_DEVICE WorkUnits(int queryTokens, int keyTokens, int heads, int batch)
        : queryBlocks((queryTokens + kQueriesPerBlock - 1) / kQueriesPerBlock), heads(heads),
          units(queryBlocks * heads * batch), tiles((keyTokens + kKeysPerTile - 1) / kKeysPerTile) {}

    NK_DEVICE WorkUnit unit(int index) const {
        return WorkUnit{index % queryBlocks, (index / queryBlocks) % heads, index / (queryBlocks * heads)};
    }
};

/// Loads key tile `tile` of (`head`, `sample`) (128 keys × D; keys past Skv arrive as zeros) into ring slot `index`
/// (the block's running tile count) with one tensor copy per 128-byte column block, once both consumers have
/// released the slot's stage. `transposed`: the tensor is [B][H][D][S] (the e4m3 values), a copy takes 128 keys of
/// 128 rows of D.
template <int D, bool FP8>
NK_DEVICE void produce_tile(u32 ring, u32 full, u32 empty, const nk_tensor_map* map, int index, int tile, int head, int sample,
                            bool transposed) {
    using P = Plan<D, FP8>;
    const int stage = index % kStages;
    if (index >= kStages) nk_mbarrier_wait(empty + stage * 8, ((index / kStages) - 1) & 1);
    nk_mbarrier_arrive_expect_bytes(full + stage * 8, P::keyTileBytes);
#pragma unroll
    for (int block = 0; block < P::copiesPerTile; ++block) {
        const u32 destination = ring + stage * P::keyTileBytes + block * kKeysPerTile * 128;
        if (transposed) {
            nk_tensor_copy_4d(destination, map, tile * kKeysPerTile, block * 128, head, sample, full + stage * 8);
        } else {
            nk_tensor_copy_4d(destination, map, block * 128 / P::elementBytes, head, tile * kKeysPerTile, sample, full + stage * 8);
        }
    }
}

/// The producer (one thread), for each of the block's work units in turn: the first K and V tiles, the unit's
/// queries once the consumers' last S of the previous unit has read the query tile, then the remaining tiles (K of
/// a tile first: S needs it a turn before P·V needs V). The rings run on across units, so the next unit's tiles
/// load while the consumers finish the current one.
template <int D, bool FP8>
NK_DEVICE void produce(u32 base, const nk_tensor_map* queryMap, const nk_tensor_map* keyMap, const nk_tensor_map* valueMap,
                       const WorkUnits& work) {
    using P = Plan<D, FP8>;
    nk_prefetch_tensor_map(queryMap);
    nk_prefetch_tensor_map(keyMap);
    nk_prefetch_tensor_map(valueMap);
    int iteration = 0;
    for (int unit = blockIdx.x; unit < work.units; unit += gridDim.x, ++iteration) {
        const WorkUnit w = work.unit(unit);
        const int first = iteration * work.tiles;
        for (int tile = 0; tile < work.tiles; ++tile) {
            produce_tile<D, FP8>(base + P::keys, base + P::keyFull, base + P::keyEmpty, keyMap, first + tile, tile, w.head,
                                 w.sample, false);
            produce_tile<D, FP8>(base + P::values, base + P::valueFull, base + P::valueEmpty, valueMap, first + tile, tile,
                                 w.head, w.sample, FP8);
            if (tile > 0) continue;
            if (iteration > 0) nk_mbarrier_wait(base + P::queryEmpty, (iteration - 1) & 1);
            nk_mbarrier_arrive_expect_bytes(base + P::queryFull, P::queryBytes);
#pragma unroll
            for (int block = 0; block < P::copiesPerTile; ++block) {
                nk_tensor_copy_4d(base + P::queries + block * kQueriesPerBlock * 128, queryMap, block * 128 / P::elementBytes,
                                  w.head, w.queryBlock * kQueriesPerBlock, w.sample, base + P::queryFull);
            }
        }
    }
}

/// Waits for the K or V tile in ring slot `index` (tensor copies write through the async proxy, which wgmma reads: no
/// fence needed).
NK_DEVICE void wait_for_tile(u32 full, int index) { nk_mbarrier_wait(full + (index % kStages) * 8, (index / kStages) & 1); }

/// P of one key tile as A fragments: 16-bit, eight k-steps of 16 keys; e4m3, four k-steps of 32 keys.
template <bool FP8>
using Weights = u32[FP8 ? 4 : 8][4];

/// Issues S = Q·Kᵀ (64 queries × 128 keys) as one committed wgmma group: k-steps of 32 bytes of head dimensions
/// (16 16-bit or 32 e4m3 values).
template <class T, int D, bool FP8>
NK_DEVICE void issue_scores(float (&scores)[64], u32 queryTile, u32 keyTile) {
    nk_wgmma_fence();
#pragma unroll
    for (int step = 0; step < D * Plan<D, FP8>::elementBytes / 32; ++step) {
        // Column block step / 4 of the tiles, then +32 bytes per step inside the 128-byte rows.
        const u32 within = (step & 3) * 32;
        const u64 a = nk_wgmma_descriptor(queryTile + (step >> 2) * kQueriesPerBlock * 128 + within, 16, 1024);
        const u64 b = nk_wgmma_descriptor(keyTile + (step >> 2) * kKeysPerTile * 128 + within, 16, 1024);
        if constexpr (FP8) {
            nk_wgmma_ss_n128_e4m3(scores, a, b, step > 0);
        } else {
            nk_wgmma_ss_n128<T>(scores, a, b, step > 0);
        }
    }
    nk_wgmma_commit();
}

/// Issues O += P·V for one key tile as one committed wgmma group: eight k-steps of 16 keys (16-bit; V MN-major) or
/// four of 32 keys (e4m3; V transposed, K-major like K).
template <class T, int D, bool FP8>
NK_DEVICE void issue_values(float (&output)[D / 2], const Weights<FP8>& weights, u32 valueTile) {
    nk_wgmma_fence();
    if constexpr (FP8) {
        static_assert(D == 128, "the e4m3 kernel has head dimension 128");
#pragma unroll
        for (int step = 0; step < 4; ++step) {
            // Keys 32·step…: +32 bytes inside the 128-byte rows of D; 8-row groups of D 1024 bytes apart.
            nk_wgmma_rs_n128_e4m3(output, weights[step], nk_wgmma_descriptor(valueTile + step * 32, 16, 1024), 1);
        }
    } else {
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
    nk_wgmma_commit();
}

/// The online-softmax step of one key tile: masks keys past `keyTokens` or masked out, updates the running maxima
/// (base 2) and this thread's partial row sums, writes P = 2^(S·scale − max + weightShift) rounded to the operand
/// format as A fragments (16-bit: 16 keys each; e4m3: 32 keys each, in the permuted key order of the v codes), and
/// returns in `correction` the factor the output rows must be scaled by.
template <class T, bool FP8>
NK_DEVICE void softmax_tile(float (&scores)[64], Weights<FP8>& weights, float (&correction)[2], float (&rowMax)[2],
                            float (&rowSum)[2], int firstKey, int keyTokens, const u8* sampleMask, float scaleLog2,
                            float weightShift) {
    const int t = threadIdx.x & 3;
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
        correction[half] = exp2f(rowMax[half] - reference[half]);
        rowMax[half] = newMax;
        rowSum[half] *= correction[half];
        reference[half] -= weightShift;
    }
    if constexpr (FP8) {
#pragma unroll
        for (int step = 0; step < 4; ++step) {
            // Keys 32·step + 8i + 2t + (c & 1) for accumulator block i: the A fragment's key position 4t + j of each
            // 16 takes (2t, 2t + 1, 8 + 2t, 9 + 2t)[j], the order the v codes are stored in.
            float p[16];
#pragma unroll
            for (int c = 0; c < 16; ++c) {
                const int half = (c >> 1) & 1;
                p[c] = exp2_approx(fmaf(scores[16 * step + c], scaleLog2, -reference[half]));
                rowSum[half] += p[c];
            }
            weights[step][0] = nk_e4m3_pack4(p[0], p[1], p[4], p[5]);
            weights[step][1] = nk_e4m3_pack4(p[2], p[3], p[6], p[7]);
            weights[step][2] = nk_e4m3_pack4(p[8], p[9], p[12], p[13]);
            weights[step][3] = nk_e4m3_pack4(p[10], p[11], p[14], p[15]);
        }
    } else {
#pragma unroll
        for (int step = 0; step < 8; ++step) {
            float p[8];
#pragma unroll
            for (int c = 0; c < 8; ++c) {
                const int half = (c >> 1) & 1;
                p[c] = exp2_approx(fmaf(scores[8 * step + c], scaleLog2, -reference[half]));
                rowSum[half] += p[c];
            }
            weights[step][0] = T::pack2(p[0], p[1]);
            weights[step][1] = T::pack2(p[2], p[3]);
            weights[step][2] = T::pack2(p[4], p[5]);
            weights[step][3] = T::pack2(p[6], p[7]);
        }
    }
}

/// Scales the output rows g (half 0) and g + 8 (half 1) of this thread.
template <int N>
NK_DEVICE void rescale(float (&output)[N], const float (&correction)[2]) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i) {
        output[4 * i] *= correction[0];
        output[4 * i + 1] *= correction[0];
        output[4 * i + 2] *= correction[1];
        output[4 * i + 3] *= correction[1];
    }
}

/// The two consumer warpgroups take turns issuing their matrix products (named barriers 3 and 4), so one's
/// softmax runs while the other's products occupy the tensor cores.
NK_DEVICE void wait_for_turn(int group) { nk_named_barrier(3 + group, 2 * 128); }
NK_DEVICE void pass_turn(int group) { nk_named_barrier_arrive(3 + (group ^ 1), 2 * 128); }

/// The sequence index of this thread's output row g (half 0) or g + 8 (half 1) of its warp's 16, from the warpgroup's
/// first query.
NK_DEVICE int output_row(int firstQuery, int half) {
    return firstQuery + 16 * ((threadIdx.x % 128) / 32) + ((threadIdx.x & 31) >> 2) + 8 * half;
}

/// The factor of this thread's output row `half`: its weight sum completed over the quad (into `rowSum[half]`), then
/// `valueScale / sum` (0 for a row whose keys were all masked).
NK_DEVICE float row_normalizer(float (&rowSum)[2], int half, float valueScale) {
    rowSum[half] += __shfl_xor_sync(0xFFFFFFFFu, rowSum[half], 1);
    rowSum[half] += __shfl_xor_sync(0xFFFFFFFFu, rowSum[half], 2);
    return rowSum[half] > 0.0f ? valueScale / rowSum[half] : 0.0f;
}

/// Calls `store(half, row, inverse)` for this thread's output rows g (half 0) and g + 8 (half 1) that lie inside the
/// sequence, `inverse` the row's factor (`row_normalizer`; every row's sum is completed, inside or not).
template <class Store>
NK_DEVICE void for_each_output_row(float (&rowSum)[2], int firstQuery, int queryTokens, float valueScale, Store store) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const float inverse = row_normalizer(rowSum, half, valueScale);
        const int row = output_row(firstQuery, half);
        if (row < queryTokens) store(half, row, inverse);
    }
}

/// Normalises this thread's output rows g and g + 8 by their full row sums (summed over the quad), times
/// `valueScale`, and stores the rows inside the sequence.
template <class T, int D>
NK_DEVICE void store_rows(u16* o, const float (&output)[D / 2], float (&rowSum)[2], i64 queryBase, int firstQuery,
                          int queryTokens, int rowStride, float valueScale) {
    const int t = threadIdx.x & 3;
    for_each_output_row(rowSum, firstQuery, queryTokens, valueScale, [&](int half, int row, float inverse) {
        u16* destination = o + queryBase + (i64)row * rowStride + 2 * t;
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
            *reinterpret_cast<u32*>(destination + 8 * i) =
                T::pack2(output[4 * i + 2 * half] * inverse, output[4 * i + 2 * half + 1] * inverse);
        }
    });
}

/// The `…_fp8_codes_…` entry points' output: instead of the 16-bit rows, the e4m3 input of the fast W4A4 layer that
/// reads them (`CUDASVDQW4A4FastLinear`), quantized as that layer's activation pass would quantize the 16-bit rows
/// (w4a4_fp8_quantize.cu: t = o · inverseSmooth, codes e4m3(t · 448/amax), scale amax/448) except that amax is not
/// the row's largest |t| but a bound on it known before the rows exist: an output row is a weighted mean of the v
/// rows, so |o| ≤ max |v| · (1 + the e4m3 rounding of the weights), and per (sample, table)
/// amax = 448 · max_h vScale[sample, h] · headFactors[table][h] with headFactors = 9/8 · max over the head's
/// channels of |inverseSmooth| (made on the host, `AttentionFP8CodesOutput`). Rows before `splitToken` use table 0
/// (a double block's text tokens feed another layer than its image tokens), the others table 1. A row is the
/// layer's whole input (H · D codes, no padding), so its width must be the layer's GEMM depth. Each block puts, when
/// it starts, both tables' smoothing factors (2 · H · D floats) and each sample's 448 / amax and amax / 448 per table
/// (4 · B floats) into shared memory after its plan (`CodesShared`), so the epilogues neither wait on L2 nor keep
/// anything in registers through the main loop.
struct OutputCodes {
    u8* codes;                     // e4m3 [B · Sq, H · D]
    float* tokenScales;            // [B · Sq]
    const float* inverseSmooth0;   // f32 [H · D] of table 0, and of table 1
    const float* inverseSmooth1;
    const float* headFactors0;     // f32 [H] of table 0, and of table 1
    const float* headFactors1;
    int splitToken;
};

/// The codes output's shared memory after the plan at `start`: smoothing factors [2][H · D], then per sample and
/// table the code factor 448 / amax and the scale amax / 448 ([B][2][2]), then (16-byte aligned) a staging tile per
/// consumer warp: its 16 rows of one head's codes, `kStagingStride` bytes apart, stored to global memory as whole
/// 128-byte rows.
struct CodesShared {
    u32 start;
    int width;
    int batch;

    /// 128 codes and 16 bytes of padding: the u16 writes of a warp's 8 rows g fall into distinct banks.
    static constexpr int kStagingStride = 144;
    static constexpr int kStagingBytes = 16 * kStagingStride;

    NK_DEVICE u32 staging(int warp) const { return ((start + 4u * (u32)(2 * width + 4 * batch) + 15u) & ~15u) + (u32)(warp * kStagingBytes); }

    NK_DEVICE u32 smoothing(int table, int column) const { return start + 4u * (u32)(table * width + column); }
    NK_DEVICE u32 factor(int sample, int table) const { return start + 4u * (u32)(2 * width + 4 * sample + 2 * table); }

    /// Fills the region (every thread of the block takes part; a barrier must follow). The per-sample values:
    /// amax = 448 · max_h vScale[sample, h] · headFactors[table][h], in the order of the CPU reference.
    NK_DEVICE static void fill(float* region, const OutputCodes& out, const float* valueScales, int width, int heads, int batch) {
        for (int i = threadIdx.x; i < 2 * width; i += blockDim.x) region[i] = i < width ? out.inverseSmooth0[i] : out.inverseSmooth1[i - width];
        for (int pair = threadIdx.x; pair < 2 * batch; pair += blockDim.x) {
            const int sample = pair / 2, table = pair % 2;
            const float* headFactors = table == 0 ? out.headFactors0 : out.headFactors1;
            float bound = 0.0f;
            for (int h = 0; h < heads; ++h) bound = fmaxf(bound, valueScales[sample * heads + h] * headFactors[h]);
            const float amax = W4A4_FP8_MAX * bound;
            region[2 * width + 2 * pair] = amax > 0.0f ? __fdiv_rn(W4A4_FP8_MAX, amax) : 0.0f;
            region[2 * width + 2 * pair + 1] = __fdiv_rn(amax, W4A4_FP8_MAX);
        }
    }
};

/// Two fp32 values from a shared-memory address.
NK_DEVICE float2 shared_float2(u32 address) {
    float2 value;
    asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(value.x), "=f"(value.y) : "r"(address));
    return value;
}

/// `store_rows` for the codes output: each value rounded to the 16-bit format as `store_rows` stores it, then
/// quantized for its table's layer; the head-0 blocks also write the rows' scales.
template <class T, int D>
NK_DEVICE void store_codes(const OutputCodes& out, const CodesShared& shared, const float (&output)[D / 2], float (&rowSum)[2],
                           int sample, int head, int firstQuery, int queryTokens, float valueScale) {
    static_assert(D == 128, "a staging row holds 128 codes");
    const int t = threadIdx.x & 3;
    const int lane = threadIdx.x & 31, warp = (threadIdx.x % kConsumerThreads) / 32;
    const u32 staging = shared.staging(warp);
    __syncwarp();  // the warp's previous tile is stored
    for_each_output_row(rowSum, firstQuery, queryTokens, valueScale, [&](int half, int row, float inverse) {
        const int table = row < out.splitToken ? 0 : 1;
        const float2 factorScale = shared_float2(shared.factor(sample, table));
        if (head == 0 && t == 0) out.tokenScales[(i64)sample * queryTokens + row] = factorScale.y;
        const u32 smoothing = shared.smoothing(table, head * D + 2 * t);
        const u32 tileRow = staging + (u32)((((lane >> 2) + 8 * half) * CodesShared::kStagingStride) + 2 * t);
        const float factor = factorScale.x;
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
            const float2 f = shared_float2(smoothing + 32u * i);
            const float2 value = T::unpack2(T::pack2(output[4 * i + 2 * half] * inverse, output[4 * i + 2 * half + 1] * inverse));
            const float low = value.x * f.x, high = value.y * f.y;
            const u16 pair = (u16)nk_e4m3x2(low * factor, high * factor);
            asm volatile("st.shared.u16 [%0], %1;" ::"r"(tileRow + 8u * i), "h"(pair) : "memory");
        }
    });
    __syncwarp();
    // The warp's 16 rows (16 · warp … of the warpgroup's 64) as 128 vectors of 16 bytes, 8 per row.
    const int firstRow = output_row(firstQuery, 0) - ((lane >> 2));
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const int vector = lane + 32 * j, tileRow = vector / 8, column = vector % 8;
        const int row = firstRow + tileRow;
        if (row >= queryTokens) continue;
        uint4 value;
        asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(value.x), "=r"(value.y), "=r"(value.z), "=r"(value.w)
                     : "r"(staging + (u32)(tileRow * CodesShared::kStagingStride + 16 * column)));
        *reinterpret_cast<uint4*>(out.codes + ((i64)sample * queryTokens + row) * shared.width + head * D + 16 * column) = value;
    }
}

/// A consumer warpgroup: for each of the block's work units, its 64 queries against every key tile. Tile j's
/// softmax runs while P·V of tile j − 1 is still on the tensor cores (S of tile j and P·V of tile j − 1 are issued
/// together in one turn). The turns alternate between the warpgroups across units too.
template <class T, int D, bool FP8, bool CODES>
NK_DEVICE void consume(u32 base, u16* o, const OutputCodes& codes, const u8* keyMask, const WorkUnits& work, int queryTokens,
                       int keyTokens, float scaleLog2, const float* scales, float weightShift) {
    using P = Plan<D, FP8>;
    using W = Weights<FP8>;
    const int group = threadIdx.x / 128;
    const int tiles = work.tiles;
    const int rowStride = work.heads * D;
    // This warpgroup's 64 rows of the block's queries (rows past Sq arrive as zeros).
    const u32 queryTile = base + P::queries + group * kQueriesPerGroup * 128;
    if (group == 1) pass_turn(group);  // warpgroup 0 goes first

    int iteration = 0;
    for (int unit = blockIdx.x; unit < work.units; unit += gridDim.x, ++iteration) {
        const WorkUnit w = work.unit(unit);
        const bool lastUnit = unit + (int)gridDim.x >= work.units;
        const int first = iteration * tiles;  // ring slot of the unit's tile 0
        const u8* sampleMask = keyMask ? keyMask + (i64)w.sample * keyTokens : nullptr;
        // e4m3: scores and values in units of their (sample, head) scales ([3][B][H]: q, k, v).
        float unitScaleLog2 = scaleLog2, valueScale = 1.0f;
        if constexpr (FP8) {
            const int pairs = work.units / work.queryBlocks;  // B · H
            const int pair = w.sample * work.heads + w.head;
            unitScaleLog2 = scaleLog2 * scales[pair] * scales[pairs + pair];
            valueScale = scales[2 * pairs + pair];
        }

        float output[D / 2];
#pragma unroll
        for (int i = 0; i < D / 2; ++i) output[i] = 0.0f;
        // Running maximum (scaled to base 2) and this thread's partial sum of weights for rows g and g + 8.
        float rowMax[2] = {negative_infinity(), negative_infinity()};
        float rowSum[2] = {0.0f, 0.0f};
        float scores[64];
        W weights;
        float correction[2];

        nk_mbarrier_wait(base + P::queryFull, iteration & 1);
        wait_for_tile(base + P::keyFull, first);
        wait_for_turn(group);
        issue_scores<T, D, FP8>(scores, queryTile, base + P::keys + (first % kStages) * P::keyTileBytes);
        pass_turn(group);
        nk_wgmma_wait<0>();
        nk_wgmma_pin(scores);
        nk_mbarrier_arrive(base + P::keyEmpty + (first % kStages) * 8);
        if (tiles == 1) nk_mbarrier_arrive(base + P::queryEmpty);
        softmax_tile<T, FP8>(scores, weights, correction, rowMax, rowSum, 0, keyTokens, sampleMask, unitScaleLog2, weightShift);

        // One tile: its S and the previous tile's P·V in one turn, its softmax while that P·V runs. `current` holds
        // the previous tile's P, `next` receives this tile's (two buffers, so no P is written while a wgmma reads it).
        const auto step = [&](int tile, const W& current, W& next) {
            const int stage = (first + tile) % kStages;
            const int previous = (first + tile - 1) % kStages;
            wait_for_tile(base + P::keyFull, first + tile);
            wait_for_tile(base + P::valueFull, first + tile - 1);
            wait_for_turn(group);
            issue_scores<T, D, FP8>(scores, queryTile, base + P::keys + stage * P::keyTileBytes);
            issue_values<T, D, FP8>(output, current, base + P::values + previous * P::keyTileBytes);
            pass_turn(group);
            nk_wgmma_wait<1>();  // S of this tile; P·V of the previous one may still run
            nk_wgmma_pin(scores);
            nk_mbarrier_arrive(base + P::keyEmpty + stage * 8);
            if (tile == tiles - 1) nk_mbarrier_arrive(base + P::queryEmpty);  // the unit's last S has read Q
            softmax_tile<T, FP8>(scores, next, correction, rowMax, rowSum, tile * kKeysPerTile, keyTokens, sampleMask,
                                 unitScaleLog2, weightShift);
            nk_wgmma_wait<0>();
            nk_wgmma_pin(output);
            nk_mbarrier_arrive(base + P::valueEmpty + previous * 8);
            rescale(output, correction);
        };
        // The last tile's P·V, alone in the warpgroup's last turn of the unit. Warpgroup 1's very last turn passes
        // to nobody.
        const auto finish = [&](const W& current) {
            const int stage = (first + tiles - 1) % kStages;
            wait_for_tile(base + P::valueFull, first + tiles - 1);
            wait_for_turn(group);
            issue_values<T, D, FP8>(output, current, base + P::values + stage * P::keyTileBytes);
            if (group == 0 || !lastUnit) pass_turn(group);
            nk_wgmma_wait<0>();
            nk_wgmma_pin(output);
            nk_mbarrier_arrive(base + P::valueEmpty + stage * 8);
        };
        W otherWeights;
        int tile = 1;
        for (; tile + 1 < tiles; tile += 2) {
            step(tile, weights, otherWeights);
            step(tile + 1, otherWeights, weights);
        }
        if (tile < tiles) {
            step(tile, weights, otherWeights);
            finish(otherWeights);
        } else {
            finish(weights);
        }

        const int firstQuery = w.queryBlock * kQueriesPerBlock + group * kQueriesPerGroup;
        if constexpr (CODES) {
            store_codes<T, D>(codes, CodesShared{base + P::bytes, work.heads * D, work.units / work.queryBlocks / work.heads}, output,
                              rowSum, w.sample, w.head, firstQuery,
                              queryTokens, valueScale);
        } else {
            const i64 queryBase = (i64)w.sample * queryTokens * rowStride + (i64)w.head * D;
            store_rows<T, D>(o, output, rowSum, queryBase, firstQuery, queryTokens, rowStride, valueScale);
        }
    }
}

template <class T, int D, bool FP8, bool CODES = false>
NK_DEVICE void attention(const nk_tensor_map* queryMap, const nk_tensor_map* keyMap, const nk_tensor_map* valueMap,
                         u16* __restrict__ o, const u8* __restrict__ keyMask, int queryTokens, int keyTokens, int heads,
                         int batch, float scaleLog2, const float* __restrict__ scales, float weightShift,
                         const OutputCodes& codes = OutputCodes{}) {
    using P = Plan<D, FP8>;
    extern __shared__ __align__(1024) u8 sharedBytes[];
    // The swizzle works on address bits 4-9: align the plan to 1024 bytes (the launcher adds the slack).
    const u32 raw = nk_shared_address(sharedBytes);
    const u32 base = (raw + 1023u) & ~1023u;
    const WorkUnits work(queryTokens, keyTokens, heads, batch);

    if (threadIdx.x == 0) {
        nk_mbarrier_init(base + P::queryFull, 1);
        nk_mbarrier_init(base + P::queryEmpty, kConsumerThreads);
        for (int stage = 0; stage < kStages; ++stage) {
            nk_mbarrier_init(base + P::keyFull + stage * 8, 1);
            nk_mbarrier_init(base + P::keyEmpty + stage * 8, kConsumerThreads);
            nk_mbarrier_init(base + P::valueFull + stage * 8, 1);
            nk_mbarrier_init(base + P::valueEmpty + stage * 8, kConsumerThreads);
        }
        nk_fence_mbarrier_init();
    }
    if constexpr (CODES) {
        CodesShared::fill(reinterpret_cast<float*>(sharedBytes + (base - raw) + P::bytes), codes, scales + 2 * batch * heads, heads * D,
                          heads, batch);
    }
    __syncthreads();

    if (threadIdx.x >= kConsumerThreads) {
        nk_setmaxnreg_decrease<kProducerRegisters>();
        if (threadIdx.x == kConsumerThreads) produce<D, FP8>(base, queryMap, keyMap, valueMap, work);
    } else {
        nk_setmaxnreg_increase<kConsumerRegisters>();
        consume<T, D, FP8, CODES>(base, o, codes, keyMask, work, queryTokens, keyTokens, scaleLog2, scales, weightShift);
    }
}

#define NK_ATTENTION_BODY(T, D) \
    attention<T, D, false>(&queryMap, &keyMap, &valueMap, o, keyMask, queryTokens, keyTokens, heads, batch, scaleLog2, nullptr, 0.0f)
#define NK_ATTENTION_FP8_BODY(T) \
    attention<T, 128, true>(&queryMap, &keyMap, &valueMap, o, keyMask, queryTokens, keyTokens, heads, batch, scaleLog2, scales, \
                            weightShift)
#define NK_ATTENTION_FP8_CODES_BODY(T)                                                                                   \
    attention<T, 128, true, true>(&queryMap, &keyMap, &valueMap, o, keyMask, queryTokens, keyTokens, heads, batch, scaleLog2, \
                                  scales, weightShift,                                                                    \
                                  OutputCodes{codes, tokenScales, inverseSmooth0, inverseSmooth1, headFactors0, headFactors1, splitToken})
#else
// Not sm_90a: the host dispatches to this file's kernels only on sm_90a (AttentionGeometry.usesWGMMA), so here
// they trap instead of computing.
#define NK_ATTENTION_BODY(T, D) __trap()
#define NK_ATTENTION_FP8_BODY(T) __trap()
#define NK_ATTENTION_FP8_CODES_BODY(T) __trap()
#endif

}  // namespace

// The parameters of every entry point: tensor maps of q, k and v (by value, in the parameter space), then the output
// [B, Sq, H, D], the key mask [B, Skv] or null, the lengths, the head count, the batch and log2(e)/sqrt(D).
#define NK_ATTENTION_PARAMETERS                                                                                      \
    const __grid_constant__ nk_tensor_map queryMap, const __grid_constant__ nk_tensor_map keyMap,                   \
        const __grid_constant__ nk_tensor_map valueMap, u16* o, const u8* keyMask, int queryTokens, int keyTokens,   \
        int heads, int batch, float scaleLog2

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_bf16_d64(NK_ATTENTION_PARAMETERS) {
    NK_ATTENTION_BODY(nk_bf16, 64);
}

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_bf16_d128(NK_ATTENTION_PARAMETERS) {
    NK_ATTENTION_BODY(nk_bf16, 128);
}

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_f16_d64(NK_ATTENTION_PARAMETERS) {
    NK_ATTENTION_BODY(nk_f16, 64);
}

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_f16_d128(NK_ATTENTION_PARAMETERS) {
    NK_ATTENTION_BODY(nk_f16, 128);
}

// The e4m3 kernels (head dimension 128; the output format in the name): the value map describes v transposed,
// [B][H][D][Spad] e4m3 (its key positions permuted within each 16, see the top of the file), `scales` is float32
// [3][B][H] (q, k, v), `weightShift` the log₂ of the largest P before rounding to e4m3.
#define NK_ATTENTION_FP8_PARAMETERS NK_ATTENTION_PARAMETERS, const float* scales, float weightShift

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_fp8_bf16_d128(NK_ATTENTION_FP8_PARAMETERS) {
    NK_ATTENTION_FP8_BODY(nk_bf16);
}

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_fp8_f16_d128(NK_ATTENTION_FP8_PARAMETERS) {
    NK_ATTENTION_FP8_BODY(nk_f16);
}

// The e4m3 kernels writing the fast W4A4 input codes of the layer(s) reading the output (`OutputCodes`; `o` unused).
#define NK_ATTENTION_FP8_CODES_PARAMETERS                                                                           \
    NK_ATTENTION_FP8_PARAMETERS, u8 *codes, float *tokenScales, const float *inverseSmooth0, const float *inverseSmooth1, \
        const float *headFactors0, const float *headFactors1, int splitToken

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_fp8_codes_bf16_d128(NK_ATTENTION_FP8_CODES_PARAMETERS) {
    NK_ATTENTION_FP8_CODES_BODY(nk_bf16);
}

NK_KERNEL void __launch_bounds__(kThreads, 1) nunchaku_attention_wgmma_fp8_codes_f16_d128(NK_ATTENTION_FP8_CODES_PARAMETERS) {
    NK_ATTENTION_FP8_CODES_BODY(nk_f16);
}
