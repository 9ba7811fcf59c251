// w4a4_lowrank_quantize.cu (prototype, not used by the engine; H200: 1.15× the two passes at M = 4096, 0.58–0.80×
// at M = 4608, docs/hopper.md "Session 8"): steps 1 and 2 of the fast W4A4 path in one kernel that reads x from HBM
// once. scripts/w4a4_lowrank_quantize_bench.py checks it against the two passes (a low-rank GEMM, then
// w4a4_fp8_quantize.cu) and times it.
//
// Block: 32 or 64 rows (four or two threads per row), one consumer warpgroup and one producer warp.
//   - The producer's lane 0 streams x twice through a ring of stages by TMA, each CPS chunks of 64 columns
//     (128 bytes of bf16) with their 64 smoothing factors: the first sweep with the matching 64 columns of
//     proj_down_t [R, K].
//   - Sweep 1: per chunk, wgmma m64nRk16 (bf16, fp32 sums) adds x · proj_down into the low-rank accumulators (with
//     32 rows, half of wgmma's 64 are never read back). While it runs, each thread takes the amax of its smoothed
//     values with the quantize pass's own helpers.
//   - Between the sweeps: L rounded to the activation format, l = L · inverse_beta, the row's amax over t and l, its
//     scale and factor. The low-rank codes and the zero padding of the row are written.
//   - Sweep 2: x again (from L2), the input codes with the same helpers: the codes are the two-pass path's wherever
//     L is, so they can differ only where the two sums of a low-rank value round differently.
#include "prototype_tma.cuh"
#include "w4a4_fp8_quantize.cu"

namespace {

constexpr int kChunk = 64;      // 16-bit columns per stage (one 128-byte swizzled row)
constexpr int kConsumers = 128;
constexpr int kThreads = kConsumers + 32;

#if defined(NK_HAS_WGMMA)

/// A stage holds CPS chunks: per chunk x [64 rows][128 B] (ROWS of them filled; wgmma's A tile is 64 rows, the rest
/// is never read back) and proj_down_t [R][128 B], then the CPS chunks' 64 smoothing factors each; padded to 1024
/// bytes so every tile stays aligned.
template <int ROWS, int R, int CPS, int STAGES>
struct Plan {
    static constexpr u32 xBytes = ROWS * 128;                  // what one x copy writes
    static constexpr u32 pBytes = R * 128;
    static constexpr u32 p = CPS * 64 * 128;
    static constexpr u32 smooth = p + CPS * pBytes;
    static constexpr u32 stageBytes = (smooth + CPS * kChunk * 4 + 1023) / 1024 * 1024;
    static constexpr u32 full = STAGES * stageBytes;           // mbarriers
    static constexpr u32 empty = full + STAGES * 8;
    static constexpr u32 amax = empty + STAGES * 8;            // [ROWS] float: the rows' amax of t
    static constexpr u32 factor = amax + ROWS * 4;             // [ROWS] float: 448 / amax
    static constexpr u32 bytes = factor + ROWS * 4;
    static_assert(bytes + 1024 <= 232448, "shared memory plan too large");
};

#define ACC8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])

/// D (64×R, fp32) += A (64×16) · B (16×R, stored R×K), 16-bit, both K-major in shared memory.
template <class T, int R>
NK_DEVICE void wgmma_lowrank(float (&d)[R / 2], u64 a, u64 b, int accumulate);

template <>
NK_DEVICE void wgmma_lowrank<nk_bf16, 32>(float (&d)[16], u64 a, u64 b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
                 "%12, %13, %14, %15}, %16, %17, p, 1, 1, 0, 0;\n}\n"
                 : ACC8(0), ACC8(8) : "l"(a), "l"(b), "r"(accumulate));
}

template <>
NK_DEVICE void wgmma_lowrank<nk_bf16, 64>(float (&d)[32], u64 a, u64 b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
                 "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "%32, %33, p, 1, 1, 0, 0;\n}\n"
                 : ACC8(0), ACC8(8), ACC8(16), ACC8(24) : "l"(a), "l"(b), "r"(accumulate));
}

template <int ROWS, int R, int CPS, int STAGES>
NK_DEVICE void produce(u32 base, const nk_tensor_map* xMap, const nk_tensor_map* pMap, const float* inverseSmooth, int groups,
                       int row0) {
    using P = Plan<ROWS, R, CPS, STAGES>;
    nk_prefetch_tensor_map(xMap);
    nk_prefetch_tensor_map(pMap);
    for (int i = 0; i < 2 * groups; ++i) {
        const int stage = i % STAGES, group = i < groups ? i : i - groups;
        const bool first = i < groups;
        if (i >= STAGES) nk_mbarrier_wait(base + P::empty + stage * 8, ((i / STAGES) - 1) & 1);
        const u32 full = base + P::full + stage * 8, slot = base + stage * P::stageBytes;
        nk_mbarrier_arrive_expect_bytes(full, CPS * (P::xBytes + kChunk * 4 + (first ? P::pBytes : 0)));
#pragma unroll
        for (int j = 0; j < CPS; ++j) {
            const int column = (group * CPS + j) * kChunk;
            tensor_copy_2d(slot + j * 64 * 128, xMap, column, row0, full);
            if (first) tensor_copy_2d(slot + P::p + j * P::pBytes, pMap, column, 0, full);
        }
        bulk_copy(slot + P::smooth, inverseSmooth + group * CPS * kChunk, CPS * kChunk * 4, full);
    }
}

/// The largest of `N` values (a power of two), as a tree of pairwise maxima.
template <int N>
NK_DEVICE float tree_max(const float* values) {
    if constexpr (N == 1) {
        return values[0];
    } else {
        return fmaxf(tree_max<N / 2>(values), tree_max<N / 2>(values + N / 2));
    }
}

/// Calls `body(j, u, values, factors, unit)` for each of this thread's 16-byte units of x in a stage: chunk j, the
/// thread's u-th unit (`unit` of the chunk's 8), its eight values and the chunk's smoothing factors.
template <int CPS, int UNITS, class Body>
NK_DEVICE void for_each_unit(const u8* stage, u32 smoothOffset, int row, int part, Body body) {
#pragma unroll
    for (int j = 0; j < CPS; ++j) {
        const u8* x = stage + j * 64 * 128 + row * 128;
        const float4* inverse = reinterpret_cast<const float4*>(stage + smoothOffset + j * kChunk * 4);
#pragma unroll
        for (int u = 0; u < UNITS; ++u) {
            const int unit = part * UNITS + u;
            body(j, u, *reinterpret_cast<const uint4*>(x + ((unit ^ (row & 7)) << 4)), inverse, unit);
        }
    }
}

template <class T, bool SHIFTED, int ROWS, int R, int CPS, int STAGES>
NK_DEVICE void consume(u32 base, u8* shared, const float* inverseBeta, u8* codes, float* scales, int m, int k, int depth,
                       int lowrankOffset, int row0) {
    using P = Plan<ROWS, R, CPS, STAGES>;
    constexpr int kThreadsPerRow = kConsumers / ROWS, kUnits = 8 / kThreadsPerRow;  // 16-byte units per thread and chunk
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int row = tid / kThreadsPerRow, part = tid % kThreadsPerRow;
    const int groups = k / (kChunk * CPS);
    float* rowAmax = reinterpret_cast<float*>(shared + P::amax);
    float* rowFactor = reinterpret_cast<float*>(shared + P::factor);

    // Sweep 1: low-rank sums and the amax of t; one chunk's wgmma group stays in flight.
    // One accumulator per k-step of a chunk (SETS of them), so consecutive small wgmmas do not wait on each other;
    // added in a fixed order after the sweep.
    constexpr int SETS = R <= 32 ? 4 : 2;
    float sets[SETS][R / 2];
#pragma unroll
    for (int a = 0; a < SETS; ++a) {
#pragma unroll
        for (int i = 0; i < R / 2; ++i) sets[a][i] = 0.0f;
    }
    float amax = 0.0f;
    for (int group = 0; group < groups; ++group) {
        const int stage = group % STAGES;
        nk_mbarrier_wait(base + P::full + stage * 8, (group / STAGES) & 1);
        const u32 slot = base + stage * P::stageBytes;
        nk_wgmma_fence();
#pragma unroll
        for (int j = 0; j < CPS; ++j) {
#pragma unroll
            for (int step = 0; step < 4; ++step) {
                wgmma_lowrank<T, R>(sets[step % SETS], nk_wgmma_descriptor(slot + j * 64 * 128 + step * 32, 16, 1024),
                                    nk_wgmma_descriptor(slot + P::p + j * P::pBytes + step * 32, 16, 1024),
                                    group > 0 || j > 0 || step >= SETS);
            }
        }
        nk_wgmma_commit();
        // Independent maxima per unit, folded as a tree (max is exact, so the order does not change the result).
        float unitMax[CPS][kUnits];
        for_each_unit<CPS, kUnits>(shared + stage * P::stageBytes, P::smooth, row, part,
                                   [&](int j, int u, uint4 v, const float4* inverse, int unit) {
                                       float t[8];
                                       w4a4_fp8_smooth8<T, SHIFTED>(v, inverse, unit, t);
                                       unitMax[j][u] = fmaxf(fmaxf(fmaxf(fabsf(t[0]), fabsf(t[1])), fmaxf(fabsf(t[2]), fabsf(t[3]))),
                                                             fmaxf(fmaxf(fabsf(t[4]), fabsf(t[5])), fmaxf(fabsf(t[6]), fabsf(t[7]))));
                                   });
        amax = fmaxf(amax, tree_max<CPS * kUnits>(&unitMax[0][0]));
        nk_wgmma_wait<1>();
#pragma unroll
        for (int a = 0; a < SETS; ++a) nk_wgmma_pin(sets[a]);
        __syncwarp();
        if (group > 0 && lane == 0) nk_mbarrier_arrive(base + P::empty + ((group - 1) % STAGES) * 8);
    }
    nk_wgmma_wait<0>();
#pragma unroll
    for (int a = 0; a < SETS; ++a) nk_wgmma_pin(sets[a]);
    __syncwarp();
    if (lane == 0) nk_mbarrier_arrive(base + P::empty + ((groups - 1) % STAGES) * 8);
    float acc[R / 2];
#pragma unroll
    for (int i = 0; i < R / 2; ++i) {
        acc[i] = sets[0][i];
#pragma unroll
        for (int a = 1; a < SETS; ++a) acc[i] += sets[a][i];
    }
#pragma unroll
    for (int offset = 1; offset < kThreadsPerRow; offset <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, offset));
    if (part == 0) rowAmax[row] = amax;
    nk_named_barrier(1, kConsumers);

    // Between the sweeps (the accumulator rows this block owns): l, the row's scale, the low-rank codes.
    const int g = lane >> 2, t = lane & 3;
    const int rows[2] = {warp * 16 + g, warp * 16 + g + 8};
    if (warp * 16 < ROWS) {
        float lmax[2] = {0.0f, 0.0f};
#pragma unroll
        for (int i = 0; i < R / 8; ++i) {
            const float2 beta = *reinterpret_cast<const float2*>(inverseBeta + 8 * i + 2 * t);
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                acc[4 * i + 2 * h] = T::to_float(T::from_float(acc[4 * i + 2 * h])) * beta.x;
                acc[4 * i + 2 * h + 1] = T::to_float(T::from_float(acc[4 * i + 2 * h + 1])) * beta.y;
                lmax[h] = fmaxf(lmax[h], fmaxf(fabsf(acc[4 * i + 2 * h]), fabsf(acc[4 * i + 2 * h + 1])));
            }
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            lmax[h] = fmaxf(lmax[h], __shfl_xor_sync(0xFFFFFFFFu, lmax[h], 1));
            lmax[h] = fmaxf(lmax[h], __shfl_xor_sync(0xFFFFFFFFu, lmax[h], 2));
            const float rowMax = fmaxf(rowAmax[rows[h]], lmax[h]);
            const float factor = rowMax > 0.0f ? W4A4_FP8_MAX / rowMax : 0.0f;
            const i64 r = (i64)row0 + rows[h];
            if (t == 0) {
                rowFactor[rows[h]] = factor;
                if (r < m) scales[r] = rowMax / W4A4_FP8_MAX;
            }
            if (r < m) {
                u16* lowRankCodes = reinterpret_cast<u16*>(codes + r * depth + k + lowrankOffset);
#pragma unroll
                for (int i = 0; i < R / 8; ++i) {
                    lowRankCodes[4 * i + t] = (u16)nk_e4m3x2(acc[4 * i + 2 * h] * factor, acc[4 * i + 2 * h + 1] * factor);
                }
            }
        }
    }
    // Zero codes in [K, depth) outside this layer's low-rank columns (8-byte words, split among a row's threads).
    const i64 r = (i64)row0 + row;
    if (r < m) {
        uint2* words = reinterpret_cast<uint2*>(codes + r * depth);
        for (int word = k / 8 + part; word < depth / 8; word += kThreadsPerRow) {
            const int column = word * 8 - k;
            if (column < lowrankOffset || column >= lowrankOffset + R) words[word] = make_uint2(0, 0);
        }
    }
    nk_named_barrier(1, kConsumers);

    // Sweep 2: the input codes.
    const float factor = rowFactor[row];
    uint2* rowCodes = reinterpret_cast<uint2*>(codes + r * depth);
    for (int group = 0; group < groups; ++group) {
        const int i = groups + group, stage = i % STAGES;
        nk_mbarrier_wait(base + P::full + stage * 8, (i / STAGES) & 1);
        uint2 c[CPS][kUnits];
        for_each_unit<CPS, kUnits>(shared + stage * P::stageBytes, P::smooth, row, part,
                                   [&](int j, int u, uint4 v, const float4* inverse, int unit) {
                                       c[j][u] = w4a4_fp8_codes8<T, SHIFTED>(v, inverse, unit, factor);
                                   });
        if (r < m) {
#pragma unroll
            for (int j = 0; j < CPS; ++j) {
#pragma unroll
                for (int u = 0; u < kUnits; ++u) {
                    w4a4_fp8_store_codes<true>(rowCodes + (group * CPS + j) * 8 + part * kUnits + u, c[j][u]);
                }
            }
        }
        // Released only once the codes are stored: a release right after the shared-memory loads (before their
        // values were used) let the next copy overwrite the stage under them (H200: 300–700 wrong codes per launch).
        __syncwarp();
        if (lane == 0) nk_mbarrier_arrive(base + P::empty + stage * 8);
    }
}

template <class T, bool SHIFTED, int ROWS, int R, int CPS, int STAGES>
NK_DEVICE void lowrank_quantize(const nk_tensor_map* xMap, const nk_tensor_map* pMap, const float* inverseSmooth,
                                const float* inverseBeta, u8* codes, float* scales, int m, int k, int depth, int lowrankOffset) {
    using P = Plan<ROWS, R, CPS, STAGES>;
    extern __shared__ __align__(1024) u8 raw[];
    const u32 rawBase = nk_shared_address(raw), base = (rawBase + 1023u) & ~1023u;
    u8* shared = raw + (base - rawBase);
    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; ++s) {
            nk_mbarrier_init(base + P::full + s * 8, 1);
            nk_mbarrier_init(base + P::empty + s * 8, kConsumers / 32);
        }
        nk_fence_mbarrier_init();
    }
    __syncthreads();
    const int row0 = blockIdx.x * ROWS;
    if (threadIdx.x >= kConsumers) {
        if (threadIdx.x == kConsumers) produce<ROWS, R, CPS, STAGES>(base, xMap, pMap, inverseSmooth, k / (kChunk * CPS), row0);
    } else {
        consume<T, SHIFTED, ROWS, R, CPS, STAGES>(base, shared, inverseBeta, codes, scales, m, k, depth,
                                                                 lowrankOffset, row0);
    }
}

#endif  // NK_HAS_WGMMA

}  // namespace

#define NK_LRQ_PARAMETERS const __grid_constant__ nk_tensor_map xMap, const __grid_constant__ nk_tensor_map pMap, \
    const float* inverseSmooth, const float* inverseBeta, u8* codes, float* scales, int m, int k, int depth, int lowrankOffset
#define NK_LRQ_ARGUMENTS &xMap, &pMap, inverseSmooth, inverseBeta, codes, scales, m, k, depth, lowrankOffset

// Entry points: _m<rows per block>_c<chunks per stage>_s<stages>_r<rank>.
#define NK_LRQ_ENTRY(NAME, SHIFTED, ROWS, R, CPS, STAGES)                                                            \
    NK_KERNEL void __launch_bounds__(kThreads) NAME(NK_LRQ_PARAMETERS) { NK_LRQ_BODY(SHIFTED, ROWS, R, CPS, STAGES) }
#if defined(NK_HAS_WGMMA)
#define NK_LRQ_BODY(SHIFTED, ROWS, R, CPS, STAGES) lowrank_quantize<nk_bf16, SHIFTED, ROWS, R, CPS, STAGES>(NK_LRQ_ARGUMENTS);
#else
#define NK_LRQ_BODY(SHIFTED, ROWS, R, CPS, STAGES)
#endif
NK_LRQ_ENTRY(w4a4_lowrank_quantize_tma_bf16_m32_c1_s8_r32, false, 32, 32, 1, 8)
NK_LRQ_ENTRY(w4a4_lowrank_quantize_tma_bf16_m32_c4_s4_r32, false, 32, 32, 4, 4)
NK_LRQ_ENTRY(w4a4_lowrank_quantize_tma_bf16_m32_c4_s2_r32, false, 32, 32, 4, 2)
NK_LRQ_ENTRY(w4a4_lowrank_quantize_tma_bf16_m32_c2_s4_r32, false, 32, 32, 2, 4)
NK_LRQ_ENTRY(w4a4_lowrank_quantize_tma_bf16_m64_c4_s4_r32, false, 64, 32, 4, 4)
NK_LRQ_ENTRY(w4a4_lowrank_quantize_tma_bf16_m64_c2_s4_r32, false, 64, 32, 2, 4)
NK_LRQ_ENTRY(w4a4_lowrank_quantize_tma_bf16_m64_c4_s3_r64, false, 64, 64, 4, 3)
NK_LRQ_ENTRY(w4a4_lowrank_quantize_tma_bf16_m32_c2_s4_r64, false, 32, 64, 2, 4)
NK_LRQ_ENTRY(w4a4_lowrank_quantize_tma_bf16_shifted_m32_c4_s4_r32, true, 32, 32, 4, 4)
NK_LRQ_ENTRY(w4a4_lowrank_quantize_tma_bf16_shifted_m32_c2_s4_r32, true, 32, 32, 2, 4)
