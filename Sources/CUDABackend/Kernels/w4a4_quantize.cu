// w4a4_quantize.cu: the activation pass of an SVDQuant W4A4 linear, reading the input once:
// smoothing, per-row per-group 4-bit quantization (INT4 signed, INT4 unsigned with the GELU shift, NVFP4) and the
// low-rank down-projection `x · proj_down` on the raw input (research/nunchaku-internals.md §3.2–3.3).
//
// Rounding follows the CPU reference (SVDQuant/Linear/ActivationQuantizer.swift) step for step: t = half(x / smooth)
// with an IEEE division (after half(x + 0.171875) for unsigned INT4); amax of each group exact; INT4 scale =
// amax · fp32(1/7) (or 1/15), stored as half; NVFP4 scale = min(amax · fp32(1/6), 448), stored as e4m3; codes from
// t · reciprocal(unrounded scale). The low-rank sums run on tensor cores in fp32 and are reduced across warps in a
// fixed order: deterministic, unlike Nunchaku's fp32 atomics.
//
// Grid: x = padded rows / 16 (one 16-row tile per block), y = rank slices of 64 (1 when R = 0); block: 4 warps, each
// taking every 4th 64-wide K chunk. Slice 0 also writes codes and scales. Rows ≥ M read as zeros, so padded rows get
// zero codes, zero scales and zero low-rank sums.
//
// Layouts (Layouts/W4A4FragmentLayout.swift): x [M, K] row-major; smooth [K]; down: per (chunk, 8-rank tile, lane)
// eight words = pairs of proj_down values in the lane's k order; codes: per (16-row tile, chunk, lane) one uint4 =
// a0..a3; scales [K/G, Mpad] (INT4: T, NVFP4: e4m3 bytes); low_rank f32 [Mpad, R].
#include "w4a4_half.cuh"
#include "w4a4_fragments.cuh"

/// Loads the lane's eight values of row `row` for word h of chunk `c`, in the nibble order of the precision
/// (see w4a4_fragments.cuh), as four pairs. Rows past `rows` read as zeros.
template <bool FP4>
NK_DEVICE uint4 w4a4_load_slots(const u16* base, i64 row, int rows, i64 stride, int c, int h, int t) {
    if (row >= rows) return make_uint4(0, 0, 0, 0);
    const u16* p = base + row * stride + c * 64 + 32 * h;
    if (!FP4) return *reinterpret_cast<const uint4*>(p + 8 * t);
    const uint2 low = *reinterpret_cast<const uint2*>(p + 4 * t);
    const uint2 high = *reinterpret_cast<const uint2*>(p + 16 + 4 * t);
    return make_uint4(low.x, low.y, high.x, high.y);
}

/// Value i (0..7) of four pairs.
NK_DEVICE u16 w4a4_slot(uint4 pairs, int i) {
    const u32 word = i < 2 ? pairs.x : (i < 4 ? pairs.y : (i < 6 ? pairs.z : pairs.w));
    return (i & 1) ? nk_high16(word) : nk_low16(word);
}

/// Word j (0..3) of four pairs.
NK_DEVICE u32 w4a4_word(uint4 pairs, int j) { return j == 0 ? pairs.x : (j == 1 ? pairs.y : (j == 2 ? pairs.z : pairs.w)); }

/// The maximum over the four lanes of a quad.
NK_DEVICE float w4a4_quad_max(float value) {
    value = fmaxf(value, __shfl_xor_sync(0xFFFFFFFFu, value, 1));
    return fmaxf(value, __shfl_xor_sync(0xFFFFFFFFu, value, 2));
}

/// Ranks per grid slice (eight 8-rank tiles).
#define W4A4_RANK_SLICE 64

template <class T, bool FP4, bool UNSIGNED>
NK_DEVICE void w4a4_quantize(const u16* __restrict__ x, const u16* __restrict__ smooth, const uint4* __restrict__ down,
                             uint4* __restrict__ codes, void* __restrict__ scales, float* __restrict__ low_rank,
                             int rows, int k, int rank, int padded_rows) {
    __shared__ float partial[4][16][W4A4_RANK_SLICE];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int tile = blockIdx.x;
    const i64 row0 = (i64)tile * 16 + g, row1 = row0 + 8;
    const int chunks = k / 64;
    const bool quantizing = blockIdx.y == 0;
    const int rank_base = blockIdx.y * W4A4_RANK_SLICE;
    const int rank_tiles = rank > 0 ? min(W4A4_RANK_SLICE, rank - rank_base) / 8 : 0;

    float lora[8][4];
#pragma unroll
    for (int r = 0; r < 8; r++) lora[r][0] = lora[r][1] = lora[r][2] = lora[r][3] = 0.0f;

    for (int c = warp; c < chunks; c += 4) {
        // v[r][h]: row g (r = 0) or g + 8 (r = 1), word h of the chunk.
        uint4 v[2][2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            v[0][h] = w4a4_load_slots<FP4>(x, row0, rows, k, c, h, t);
            v[1][h] = w4a4_load_slots<FP4>(x, row1, rows, k, c, h, t);
        }

        if (quantizing) {
            float smoothed[2][2][8];
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const uint4 s = w4a4_load_slots<FP4>(smooth, 0, 1, 0, c, h, t);
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    const float divisor = T::to_float(w4a4_slot(s, i));
#pragma unroll
                    for (int r = 0; r < 2; r++) {
                        u16 value = w4a4_slot(v[r][h], i);
                        if (UNSIGNED) value = nk_low16(nk_add2<T>(value, nk_dup16(T::from_float(0.171875f))));
                        smoothed[r][h][i] = T::to_float(T::from_float(__fdiv_rn(T::to_float(value), divisor)));
                    }
                }
            }
            u32 words[2][2] = {{0, 0}, {0, 0}};
            if (!FP4) {
                // One group of 64 per row: the quad's 4 × 16 values.
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    float amax = 0.0f;
#pragma unroll
                    for (int h = 0; h < 2; h++)
#pragma unroll
                        for (int i = 0; i < 8; i++) amax = fmaxf(amax, fabsf(smoothed[r][h][i]));
                    amax = w4a4_quad_max(amax);
                    const float scale = amax * (UNSIGNED ? (1.0f / 15.0f) : (1.0f / 7.0f));
                    const float reciprocal = nk_reciprocal_ftz(scale);
#pragma unroll
                    for (int h = 0; h < 2; h++)
#pragma unroll
                        for (int i = 0; i < 8; i++)
                            words[r][h] |= nk_int4_code<UNSIGNED>(smoothed[r][h][i] * reciprocal) << (4 * i);
                    if (t == 0) reinterpret_cast<u16*>(scales)[(i64)c * padded_rows + tile * 16 + g + 8 * r] = T::from_float(scale);
                }
            } else {
                // Four groups of 16 per row: group 2h + e is nibbles 4e..4e+3 of word h in each lane of the quad.
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    u32 stored[4];
#pragma unroll
                    for (int h = 0; h < 2; h++) {
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            float amax = 0.0f;
#pragma unroll
                            for (int i = 0; i < 4; i++) amax = fmaxf(amax, fabsf(smoothed[r][h][4 * e + i]));
                            amax = w4a4_quad_max(amax);
                            const float scale = fminf(amax * (1.0f / 6.0f), 448.0f);
                            stored[2 * h + e] = nk_e4m3_code_nonnegative(scale);
                            const float reciprocal = nk_reciprocal_ftz(scale);
#pragma unroll
                            for (int i = 0; i < 4; i++)
                                words[r][h] |= nk_e2m1_code(smoothed[r][h][4 * e + i] * reciprocal) << (4 * (4 * e + i));
                        }
                    }
                    // Lane t of the quad writes group t.
                    const u32 mine = t == 0 ? stored[0] : (t == 1 ? stored[1] : (t == 2 ? stored[2] : stored[3]));
                    reinterpret_cast<u8*>(scales)[(i64)(4 * c + t) * padded_rows + tile * 16 + g + 8 * r] = (u8)mine;
                }
            }
            codes[((i64)tile * chunks + c) * 32 + lane] = make_uint4(words[0][0], words[1][0], words[0][1], words[1][1]);
        }

        // Low-rank down on the raw input: four k16 products per chunk, (word h, pair half j).
#pragma unroll
        for (int rt = 0; rt < 8; rt++) {
            if (rt < rank_tiles) {
                const uint4* d = down + (((i64)c * (rank / 8) + rank_base / 8 + rt) * 32 + lane) * 2;
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const uint4 b = d[h];
                    nk_mma_f32_k16<T>(lora[rt], w4a4_word(v[0][h], 0), w4a4_word(v[1][h], 0), w4a4_word(v[0][h], 1),
                                      w4a4_word(v[1][h], 1), b.x, b.y);
                    nk_mma_f32_k16<T>(lora[rt], w4a4_word(v[0][h], 2), w4a4_word(v[1][h], 2), w4a4_word(v[0][h], 3),
                                      w4a4_word(v[1][h], 3), b.z, b.w);
                }
            }
        }
    }

    if (rank_tiles == 0) return;
    // Accumulator layout: c0, c1 = row g, ranks 2t, 2t+1; c2, c3 = row g + 8.
#pragma unroll
    for (int rt = 0; rt < 8; rt++) {
        if (rt < rank_tiles) {
            partial[warp][g][rt * 8 + 2 * t] = lora[rt][0];
            partial[warp][g][rt * 8 + 2 * t + 1] = lora[rt][1];
            partial[warp][g + 8][rt * 8 + 2 * t] = lora[rt][2];
            partial[warp][g + 8][rt * 8 + 2 * t + 1] = lora[rt][3];
        }
    }
    __syncthreads();
    const int width = rank_tiles * 8;
    for (int index = threadIdx.x; index < 16 * width; index += blockDim.x) {
        const int row = index / width, column = index % width;
        const float sum = ((partial[0][row][column] + partial[1][row][column]) + partial[2][row][column]) + partial[3][row][column];
        low_rank[((i64)tile * 16 + row) * rank + rank_base + column] = sum;
    }
}

#define W4A4_QUANTIZE_ARGS                                                                                            \
    const u16* __restrict__ x, const u16* __restrict__ smooth, const uint4* __restrict__ down, uint4* __restrict__ codes, \
        void* __restrict__ scales, float* __restrict__ low_rank, int rows, int k, int rank, int padded_rows
#define W4A4_QUANTIZE_PASS x, smooth, down, codes, scales, low_rank, rows, k, rank, padded_rows

NK_KERNEL void w4a4_quantize_bf16_int4(W4A4_QUANTIZE_ARGS) { w4a4_quantize<NKBFloat16, false, false>(W4A4_QUANTIZE_PASS); }
NK_KERNEL void w4a4_quantize_bf16_int4_unsigned(W4A4_QUANTIZE_ARGS) { w4a4_quantize<NKBFloat16, false, true>(W4A4_QUANTIZE_PASS); }
NK_KERNEL void w4a4_quantize_bf16_nvfp4(W4A4_QUANTIZE_ARGS) { w4a4_quantize<NKBFloat16, true, false>(W4A4_QUANTIZE_PASS); }
NK_KERNEL void w4a4_quantize_f16_int4(W4A4_QUANTIZE_ARGS) { w4a4_quantize<NKFloat16, false, false>(W4A4_QUANTIZE_PASS); }
NK_KERNEL void w4a4_quantize_f16_int4_unsigned(W4A4_QUANTIZE_ARGS) { w4a4_quantize<NKFloat16, false, true>(W4A4_QUANTIZE_PASS); }
NK_KERNEL void w4a4_quantize_f16_nvfp4(W4A4_QUANTIZE_ARGS) { w4a4_quantize<NKFloat16, true, false>(W4A4_QUANTIZE_PASS); }
