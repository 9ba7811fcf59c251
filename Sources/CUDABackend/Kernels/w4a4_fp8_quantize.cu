// w4a4_fp8_quantize.cu: the activation pass of the fast (Hopper) W4A4 path: smoothing and per-token float8 e4m3
// quantization of the input and of its low-rank projection, reading the input once (docs/hopper.md).
//
// The low-rank branch rides in the same FP8 GEMM as R extra K columns: row m of the GEMM's A operand is
// [t(m, 0..K) | l(m, 0..R)], t = smoothed input, l[r] = low_rank[m, r] · inverse_beta[r] (the weight side holds
// proj_up · beta / channel_scale, so the scales cancel). Per row, in fp32: t = x · inverse_smooth (x + 0.171875
// first for layers whose exact mode quantizes unsigned, so both modes feed the weights the same smoothed input);
// amax = max(|t|, |l|) over the row; scale = amax / 448 (IEEE division, stored); codes = e4m3(v · (448 / amax))
// (IEEE division, nearest-even, saturating; an all-zero row gets scale 0 and zero codes). The CPU reference
// (`W4A4FastReference`) does the same operations, so codes and scales are bit-identical. Rows are `depth` codes long:
// K + R rounded up to a multiple of 128 with zero codes (cuBLASLt's promoted FP8 accumulation is 15% slower on a
// ragged K, research notes in docs/hopper.md). The low-rank codes start at column K + lowrank_offset (0 for a layer
// alone; a layer that shares its activation pass with others has their low-rank columns around its own, zero
// here). Layers that share one pass (`CUDAW4A4FastSharedInput`) run it once with their low-rank values and
// inverse betas concatenated: one amax over t and every layer's l.
//
// Grid: one block per row; block: 32…1024 threads (a multiple of 32, at least R), each taking 8 consecutive values
// per step (16-byte loads, 8-byte code stores, coalesced across the warp) and keeping its first STEPS steps in
// registers (longer rows re-read the rest); one barrier per block (none with 32 threads). Four variants, chosen per
// shape by `CUDASVDQW4A4FastLinear.quantizeLaunch` from H200 timings (docs/hopper.md, "Session 6: quantize pass"):
// `kept6` / `kept3` also keep the smoothing factors of their steps in registers (read once per row instead of twice)
// and read x around L1 (`ld.global.nc.L1::no_allocate`), for rows up to 3072 values with 64 / 128 threads; `wide`
// (8 steps, x around L1, codes stored evict-first with `st.global.cs`) for longer rows of many tokens; `plain`
// (8 steps, no hints) for longer rows of few tokens, whose x is usually still in L2. All four compute the same fp32
// operations in the same order, so their codes and scales are identical. x [M, K] row-major (bf16/f16),
// inverse_smooth f32 [K], low_rank [M, R] (bf16/f16), inverse_beta f32 [R], codes u8 [M, depth], scales f32 [M].
// K and R must be multiples of 8, R ≤ 256, depth a multiple of 8 and at least K + lowrank_offset + R.
#include "w4a4_half.cuh"
#include "w4a4_fp8.cuh"
#include "ops_mma.cuh"

/// The eight smoothing factors 1/smooth of one 16-byte load of x.
NK_DEVICE void w4a4_fp8_factors8(const float4* inverse, int v, float f[8]) {
    const float4 a = inverse[2 * v], b = inverse[2 * v + 1];
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}

/// Eight smoothed values of one 16-byte load, `f` their factors.
template <class T, bool SHIFTED>
NK_DEVICE void w4a4_fp8_smooth8(uint4 values, const float f[8], float t[8]) {
    const u32 words[4] = {values.x, values.y, values.z, values.w};
#pragma unroll
    for (int i = 0; i < 8; i++) {
        float value = T::to_float((i & 1) ? nk_high16(words[i / 2]) : nk_low16(words[i / 2]));
        if (SHIFTED) value += 0.171875f;
        t[i] = value * f[i];
    }
}

/// Eight smoothed values of one 16-byte load, the factors read from `inverse`.
template <class T, bool SHIFTED>
NK_DEVICE void w4a4_fp8_smooth8(uint4 values, const float4* inverse, int v, float t[8]) {
    float f[8];
    w4a4_fp8_factors8(inverse, v, f);
    w4a4_fp8_smooth8<T, SHIFTED>(values, f, t);
}

/// The largest |t| of eight values.
NK_DEVICE float w4a4_fp8_amax8(const float t[8]) {
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; i++) amax = fmaxf(amax, fabsf(t[i]));
    return amax;
}

/// The largest |t| of eight values of one 16-byte load.
template <class T, bool SHIFTED>
NK_DEVICE float w4a4_fp8_amax8(uint4 values, const float4* inverse, int v) {
    float t[8];
    w4a4_fp8_smooth8<T, SHIFTED>(values, inverse, v, t);
    return w4a4_fp8_amax8(t);
}

/// The eight codes of eight smoothed values, `factor` = 448 / amax.
NK_DEVICE uint2 w4a4_fp8_codes8(const float t[8], float factor) {
    return make_uint2(nk_e4m3_pack4(t[0] * factor, t[1] * factor, t[2] * factor, t[3] * factor),
                      nk_e4m3_pack4(t[4] * factor, t[5] * factor, t[6] * factor, t[7] * factor));
}

/// The eight codes of one 16-byte load, `factor` = 448 / amax.
template <class T, bool SHIFTED>
NK_DEVICE uint2 w4a4_fp8_codes8(uint4 values, const float4* inverse, int v, float factor) {
    float t[8];
    w4a4_fp8_smooth8<T, SHIFTED>(values, inverse, v, t);
    return w4a4_fp8_codes8(t, factor);
}

/// A 16-byte load of x; `STREAM`: not allocated in L1 (each value is read once).
template <bool STREAM>
NK_DEVICE uint4 w4a4_fp8_load_input(const uint4* address) {
    if (!STREAM) return *address;
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(address));
    return r;
}

/// An 8-byte store of codes; `STREAM`: marked evict-first (`st.global.cs`).
template <bool STREAM>
NK_DEVICE void w4a4_fp8_store_codes(uint2* address, uint2 value) {
    if (STREAM) asm volatile("st.global.cs.v2.u32 [%0], {%1, %2};" ::"l"(address), "r"(value.x), "r"(value.y) : "memory");
    else *address = value;
}

/// The maximum of `value` over the block (every thread gets it).
NK_DEVICE float w4a4_fp8_block_max(float value) {
    __shared__ float partial[32];
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xFFFFFFFFu, value, offset));
    if (blockDim.x == 32) return value;
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = value;
    __syncthreads();
    float result = partial[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); w++) result = fmaxf(result, partial[w]);
    return result;
}

/// One row per block. The first `STEPS` 16-byte loads of each thread stay in registers (the rest of a longer row is
/// read twice); `KEEP`: their smoothing factors too, read once instead of once per use; `LOAD_STREAM` /
/// `STORE_STREAM`: the cache hints of `w4a4_fp8_load_input` / `w4a4_fp8_store_codes`.
template <class T, bool SHIFTED, int STEPS, bool KEEP, bool LOAD_STREAM, bool STORE_STREAM>
NK_DEVICE void w4a4_fp8_quantize(const u16* __restrict__ x, const float* __restrict__ inverse_smooth,
                                 const u16* __restrict__ low_rank, const float* __restrict__ inverse_beta,
                                 u8* __restrict__ codes, float* __restrict__ scales, int k, int rank, int depth,
                                 int lowrank_offset) {
    const i64 row = blockIdx.x;
    const uint4* input = reinterpret_cast<const uint4*>(x + row * k);
    const float4* inverse = reinterpret_cast<const float4*>(inverse_smooth);
    const int vectors = k / 8, threads = blockDim.x;

    float factors[KEEP ? STEPS : 1][8];
    if (KEEP) {
#pragma unroll
        for (int j = 0; j < STEPS; j++) {
            const int v = threadIdx.x + j * threads;
            if (v < vectors) w4a4_fp8_factors8(inverse, v, factors[KEEP ? j : 0]);
        }
    }
    uint4 cached[STEPS];
#pragma unroll
    for (int j = 0; j < STEPS; j++) {
        const int v = threadIdx.x + j * threads;
        if (v < vectors) cached[j] = w4a4_fp8_load_input<LOAD_STREAM>(input + v);
    }
    // Thread r < R holds the row's low-rank value r, already divided by beta.
    const float lora = threadIdx.x < rank ? T::to_float(low_rank[row * rank + threadIdx.x]) * inverse_beta[threadIdx.x] : 0.0f;
    // The smoothed values of cached step j.
    auto smoothed = [&](int j, int v, float t[8]) {
        if (KEEP) w4a4_fp8_smooth8<T, SHIFTED>(cached[j], factors[KEEP ? j : 0], t);
        else w4a4_fp8_smooth8<T, SHIFTED>(cached[j], inverse, v, t);
    };
    float amax = fabsf(lora);
#pragma unroll
    for (int j = 0; j < STEPS; j++) {
        const int v = threadIdx.x + j * threads;
        if (v < vectors) {
            float t[8];
            smoothed(j, v, t);
            amax = fmaxf(amax, w4a4_fp8_amax8(t));
        }
    }
    for (int v = threadIdx.x + STEPS * threads; v < vectors; v += threads)
        amax = fmaxf(amax, w4a4_fp8_amax8<T, SHIFTED>(w4a4_fp8_load_input<LOAD_STREAM>(input + v), inverse, v));
    amax = w4a4_fp8_block_max(amax);
    const float factor = amax > 0.0f ? __fdiv_rn(W4A4_FP8_MAX, amax) : 0.0f;
    if (threadIdx.x == 0) scales[row] = __fdiv_rn(amax, W4A4_FP8_MAX);

    u8* row_codes = codes + row * depth;
    uint2* output = reinterpret_cast<uint2*>(row_codes);
#pragma unroll
    for (int j = 0; j < STEPS; j++) {
        const int v = threadIdx.x + j * threads;
        if (v < vectors) {
            float t[8];
            smoothed(j, v, t);
            w4a4_fp8_store_codes<STORE_STREAM>(output + v, w4a4_fp8_codes8(t, factor));
        }
    }
    for (int v = threadIdx.x + STEPS * threads; v < vectors; v += threads)
        w4a4_fp8_store_codes<STORE_STREAM>(output + v, w4a4_fp8_codes8<T, SHIFTED>(w4a4_fp8_load_input<LOAD_STREAM>(input + v), inverse, v, factor));
    // Codes of the low-rank values (thread c < R holds value c) at K + lowrank_offset + c, zeros in the other columns.
    for (int c = threadIdx.x; c < depth - k; c += threads)
        if (c < lowrank_offset || c >= lowrank_offset + rank) row_codes[k + c] = 0;
    if ((int)threadIdx.x < rank) row_codes[k + lowrank_offset + threadIdx.x] = (u8)(nk_e4m3x2(lora * factor, 0.0f) & 0xFFu);
}

#define W4A4_FP8_QUANTIZE_ARGS                                                                         \
    const u16* __restrict__ x, const float* __restrict__ inverse_smooth, const u16* __restrict__ low_rank, \
        const float* __restrict__ inverse_beta, u8* __restrict__ codes, float* __restrict__ scales, int k, int rank, int depth, \
        int lowrank_offset
#define W4A4_FP8_QUANTIZE_PASS x, inverse_smooth, low_rank, inverse_beta, codes, scales, k, rank, depth, lowrank_offset
// The variants (STEPS, KEEP, LOAD_STREAM, STORE_STREAM), one per shape class (CUDASVDQW4A4FastLinear.quantizeLaunch,
// measured on an H200 in docs/hopper.md).
#define W4A4_FP8_KEPT6 6, true, true, false
#define W4A4_FP8_KEPT3 3, true, true, false
#define W4A4_FP8_WIDE 8, false, true, true
#define W4A4_FP8_PLAIN 8, false, false, false
NK_KERNEL void w4a4_fp8_quantize_bf16_kept6(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, false, W4A4_FP8_KEPT6>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_shifted_kept6(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, true, W4A4_FP8_KEPT6>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_kept6(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, false, W4A4_FP8_KEPT6>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_shifted_kept6(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, true, W4A4_FP8_KEPT6>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_kept3(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, false, W4A4_FP8_KEPT3>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_shifted_kept3(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, true, W4A4_FP8_KEPT3>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_kept3(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, false, W4A4_FP8_KEPT3>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_shifted_kept3(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, true, W4A4_FP8_KEPT3>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_wide(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, false, W4A4_FP8_WIDE>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_shifted_wide(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, true, W4A4_FP8_WIDE>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_wide(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, false, W4A4_FP8_WIDE>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_shifted_wide(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, true, W4A4_FP8_WIDE>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_plain(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, false, W4A4_FP8_PLAIN>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_shifted_plain(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, true, W4A4_FP8_PLAIN>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_plain(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, false, W4A4_FP8_PLAIN>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_shifted_plain(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, true, W4A4_FP8_PLAIN>(W4A4_FP8_QUANTIZE_PASS);
}

// ---- The fused pass: the low-rank down-projection and the quantization in one read of x ----
//
// Grid: one block per 16 rows (the M of one mma.sync tile); block: 256 threads (8 warps); dynamic shared memory:
// the x tile [16, K + 8] (16-bit) and the partial sums [4, 16, R] (f32). Each block:
// 1. copies its 16 rows of x into shared memory with cp.async (row stride K + 8 values, so the eight rows one
//    ldmatrix reads fall in distinct banks when K is a multiple of 64; rows past M are zero-filled);
// 2. computes L = x · proj_down with mma.sync m16n8k16 and fp32 accumulation: warp w takes the n-tiles of half
//    (w & 1) of R and a quarter (w >> 1) of the K steps; the four partial sums of each value go to shared memory
//    and are added in one fixed order, so L does not depend on timing. proj_down_t is [R, K] (the B operand's
//    "col" layout), read through L2 (every block reads all of it), the fragments of up to four K steps loaded ahead;
//    meanwhile, each thread takes the amax of t over its share of its row (16 threads per row);
// 3. rounds L to the activation type (as the separate low-rank GEMM's output is), l = L · inverse_beta, takes the
//    row's amax over |t| and |l|; scale and codes as in `w4a4_fp8_quantize`, written from shared memory.
// The codes of t are those of the two-pass path bit for bit when l's amax matches; l may differ from it where the
// two sums of L round to different 16-bit values (the GEMMs add in other orders).
// K a multiple of 16, R a multiple of 16 up to 256, depth a multiple of 8 and at least K + lowrank_offset + R (the
// low-rank codes at K + lowrank_offset, as in `w4a4_fp8_quantize`).
#define W4A4_FP8_FUSED_ROWS 16
#define W4A4_FP8_FUSED_SLICES 4

/// One warp's partial sums of L: `TILES` n-tiles from `first_tile`, K steps [begin, end), into `out` [16, R].
template <class T, int TILES>
NK_DEVICE void w4a4_fp8_lowrank_slice(const u16* tile, int stride, const u16* __restrict__ proj_down_t, int k,
                                      int rank, int first_tile, int begin, int end, float* out) {
    const int lane = threadIdx.x & 31;
    float accumulators[TILES][4];
#pragma unroll
    for (int t = 0; t < TILES; t++) accumulators[t][0] = accumulators[t][1] = accumulators[t][2] = accumulators[t][3] = 0.0f;
    const u32* b_row = reinterpret_cast<const u32*>(proj_down_t + (i64)(first_tile * 8 + (lane >> 2)) * k + (lane & 3) * 2);
    const int tile_words = 4 * k;   // u32 words per n-tile (8 rows of K values)
    const u16* a_row = tile + ((lane & 7) + ((lane >> 3) & 1) * 8) * stride + (lane >> 4) * 8;
    // K steps whose B fragments are loaded together (at most 16 registers of them).
    constexpr int AHEAD = TILES <= 2 ? 4 : TILES <= 4 ? 2 : 1;
    for (int step = begin; step < end; step += AHEAD) {
        u32 b[AHEAD][TILES][2];
#pragma unroll
        for (int j = 0; j < AHEAD; j++) {
#pragma unroll
            for (int t = 0; t < TILES; t++) {
                const bool valid = step + j < end;
                const u32* word = b_row + t * tile_words + (valid ? step + j : begin) * 8;
                b[j][t][0] = __ldg(word);
                b[j][t][1] = __ldg(word + 4);
            }
        }
#pragma unroll
        for (int j = 0; j < AHEAD; j++) {
            if (step + j < end) {
                u32 a[4];
                nk_ldmatrix_x4(a, a_row + (step + j) * 16);
#pragma unroll
                for (int t = 0; t < TILES; t++) nk_mma_16816_half<T>(accumulators[t], a, b[j][t][0], b[j][t][1]);
            }
        }
    }
    const int row = lane >> 2;
#pragma unroll
    for (int t = 0; t < TILES; t++) {
        const int n = (first_tile + t) * 8 + (lane & 3) * 2;
        out[row * rank + n] = accumulators[t][0];
        out[row * rank + n + 1] = accumulators[t][1];
        out[(row + 8) * rank + n] = accumulators[t][2];
        out[(row + 8) * rank + n + 1] = accumulators[t][3];
    }
}

template <class T, bool SHIFTED>
NK_DEVICE void w4a4_fp8_quantize_lowrank(const u16* __restrict__ x, const float* __restrict__ inverse_smooth,
                                         const u16* __restrict__ proj_down_t, const float* __restrict__ inverse_beta,
                                         u8* __restrict__ codes, float* __restrict__ scales, int m, int k, int rank,
                                         int depth, int lowrank_offset) {
    extern __shared__ __align__(16) u8 w4a4_fp8_fused_shared[];
    const int stride = k + 8;
    u16* tile = reinterpret_cast<u16*>(w4a4_fp8_fused_shared);
    float* partial = reinterpret_cast<float*>(tile + W4A4_FP8_FUSED_ROWS * stride);  // [slices][16][R]
    const float4* inverse = reinterpret_cast<const float4*>(inverse_smooth);
    const i64 first_row = (i64)blockIdx.x * W4A4_FP8_FUSED_ROWS;
    const int local_row = threadIdx.x >> 4, column = threadIdx.x & 15, vectors = k / 8;
    const bool row_valid = first_row + local_row < m;

    // 1. x → shared memory.
    {
        const uint4* input = reinterpret_cast<const uint4*>(x + (row_valid ? first_row + local_row : 0) * k);
        uint4* destination = reinterpret_cast<uint4*>(tile + local_row * stride);
        for (int v = column; v < vectors; v += 16) nk_cp_async_16(destination + v, input + v, row_valid);
        nk_cp_async_commit();
        nk_cp_async_wait<0>();
    }
    __syncthreads();

    // 2. Partial sums of L over a quarter of K per warp, for half of R; then this thread's amax of t.
    {
        const int warp = threadIdx.x >> 5, half_tiles = rank / 16, slice = warp >> 1;
        const int steps = k / 16, begin = slice * steps / W4A4_FP8_FUSED_SLICES, end = (slice + 1) * steps / W4A4_FP8_FUSED_SLICES;
        float* out = partial + slice * W4A4_FP8_FUSED_ROWS * rank;
        const int first_tile = (warp & 1) * half_tiles;
        switch (half_tiles) {
#define W4A4_FP8_SLICE_CASE(TILES) \
    case TILES: w4a4_fp8_lowrank_slice<T, TILES>(tile, stride, proj_down_t, k, rank, first_tile, begin, end, out); break;
            W4A4_FP8_SLICE_CASE(1) W4A4_FP8_SLICE_CASE(2) W4A4_FP8_SLICE_CASE(3) W4A4_FP8_SLICE_CASE(4)
            W4A4_FP8_SLICE_CASE(5) W4A4_FP8_SLICE_CASE(6) W4A4_FP8_SLICE_CASE(7) W4A4_FP8_SLICE_CASE(8)
            W4A4_FP8_SLICE_CASE(9) W4A4_FP8_SLICE_CASE(10) W4A4_FP8_SLICE_CASE(11) W4A4_FP8_SLICE_CASE(12)
            W4A4_FP8_SLICE_CASE(13) W4A4_FP8_SLICE_CASE(14) W4A4_FP8_SLICE_CASE(15) W4A4_FP8_SLICE_CASE(16)
#undef W4A4_FP8_SLICE_CASE
            default: break;
        }
    }
    float amax = 0.0f;
    const uint4* source = reinterpret_cast<const uint4*>(tile + local_row * stride);
    for (int v = column; v < vectors; v += 16) amax = fmaxf(amax, w4a4_fp8_amax8<T, SHIFTED>(source[v], inverse, v));
    __syncthreads();

    // 3. l = round(L) · inverse_beta (into slice 0's place), the row amax, scale, codes.
    for (int c = column; c < rank; c += 16) {
        const int index = local_row * rank + c;
        float sum = partial[index];
#pragma unroll
        for (int s = 1; s < W4A4_FP8_FUSED_SLICES; s++) sum += partial[s * W4A4_FP8_FUSED_ROWS * rank + index];
        const float l = T::to_float(T::from_float(sum)) * inverse_beta[c];
        partial[index] = l;
        amax = fmaxf(amax, fabsf(l));
    }
#pragma unroll
    for (int offset = 8; offset > 0; offset >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, offset));
    if (!row_valid) return;
    const i64 row = first_row + local_row;
    const float factor = amax > 0.0f ? __fdiv_rn(W4A4_FP8_MAX, amax) : 0.0f;
    if (column == 0) scales[row] = __fdiv_rn(amax, W4A4_FP8_MAX);
    u8* row_codes = codes + row * depth;
    uint2* output = reinterpret_cast<uint2*>(row_codes);
    for (int v = column; v < vectors; v += 16) output[v] = w4a4_fp8_codes8<T, SHIFTED>(source[v], inverse, v, factor);
    const float* l = partial + local_row * rank;
    for (int c = column; c < depth - k; c += 16) {
        const int r = c - lowrank_offset;
        row_codes[k + c] = r >= 0 && r < rank ? (u8)(nk_e4m3x2(l[r] * factor, 0.0f) & 0xFFu) : (u8)0;
    }
}

#define W4A4_FP8_FUSED_ARGS                                                                                      \
    const u16* __restrict__ x, const float* __restrict__ inverse_smooth, const u16* __restrict__ proj_down_t,     \
        const float* __restrict__ inverse_beta, u8* __restrict__ codes, float* __restrict__ scales, int m, int k, \
        int rank, int depth, int lowrank_offset
#define W4A4_FP8_FUSED_PASS x, inverse_smooth, proj_down_t, inverse_beta, codes, scales, m, k, rank, depth, lowrank_offset

NK_KERNEL void __launch_bounds__(256, 2) w4a4_fp8_quantize_lowrank_bf16(W4A4_FP8_FUSED_ARGS) {
    w4a4_fp8_quantize_lowrank<NKBFloat16, false>(W4A4_FP8_FUSED_PASS);
}
NK_KERNEL void __launch_bounds__(256, 2) w4a4_fp8_quantize_lowrank_bf16_shifted(W4A4_FP8_FUSED_ARGS) {
    w4a4_fp8_quantize_lowrank<NKBFloat16, true>(W4A4_FP8_FUSED_PASS);
}
NK_KERNEL void __launch_bounds__(256, 2) w4a4_fp8_quantize_lowrank_f16(W4A4_FP8_FUSED_ARGS) {
    w4a4_fp8_quantize_lowrank<NKFloat16, false>(W4A4_FP8_FUSED_PASS);
}
NK_KERNEL void __launch_bounds__(256, 2) w4a4_fp8_quantize_lowrank_f16_shifted(W4A4_FP8_FUSED_ARGS) {
    w4a4_fp8_quantize_lowrank<NKFloat16, true>(W4A4_FP8_FUSED_PASS);
}
