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
// ragged K, research notes in docs/hopper.md).
//
// Work split: a row is `depth / 16` units of 16 values (units below K/16 from x, then R/16 from low_rank, then
// zeros), each read as two 16-byte loads and written as one 16-byte store of codes. A group of `row_threads`
// threads (a power of two, 32…1024, dividing the block) owns one row and keeps up to W4A4_FP8_UNITS units per
// thread in registers, all loads issued before the first use: the row is read once. The amax is a warp shuffle
// reduction, plus one shared-memory step (and the block's only barrier) when a row spans several warps; the host
// picks the smallest group that holds the row (`row_threads · 8 · 16 ≥ depth`), so FLUX's K = 3072 rows take one
// warp each. x [M, K] row-major (bf16/f16), inverse_smooth f32 [K], low_rank [M, R] (bf16/f16), inverse_beta
// f32 [R], codes u8 [M, depth], scales f32 [M]. K and R multiples of 16, depth a multiple of 16, at least K + R
// and at most row_threads · 128.
#include "w4a4_half.cuh"
#include "w4a4_fp8.cuh"

/// Units of 16 values each thread keeps in registers.
#define W4A4_FP8_UNITS 8

/// The 16 values of one unit (two 16-byte loads of 8 bf16/f16 each) times 16 consecutive factors, plus `shift`
/// before the product.
template <class T>
NK_DEVICE void w4a4_fp8_scaled16(uint4 low, uint4 high, const float* __restrict__ factors, float shift, float t[16]) {
    const float4* f = reinterpret_cast<const float4*>(factors);
    const float4 f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3];
    const float factor[16] = {f0.x, f0.y, f0.z, f0.w, f1.x, f1.y, f1.z, f1.w, f2.x, f2.y, f2.z, f2.w, f3.x, f3.y, f3.z, f3.w};
    const u32 words[8] = {low.x, low.y, low.z, low.w, high.x, high.y, high.z, high.w};
#pragma unroll
    for (int i = 0; i < 16; i++) {
        float value = T::to_float((i & 1) ? nk_high16(words[i / 2]) : nk_low16(words[i / 2]));
        if (shift != 0.0f) value += shift;
        t[i] = value * factor[i];
    }
}

/// The values of unit `u` of a row (zeros past K + R): smoothed input, or low-rank values over beta.
template <class T, bool SHIFTED>
NK_DEVICE void w4a4_fp8_unit_values(int u, uint4 low, uint4 high, int input_units, int rank_units,
                                    const float* __restrict__ inverse_smooth, const float* __restrict__ inverse_beta,
                                    float t[16]) {
    if (u < input_units) {
        w4a4_fp8_scaled16<T>(low, high, inverse_smooth + 16 * u, SHIFTED ? 0.171875f : 0.0f, t);
    } else if (u < input_units + rank_units) {
        w4a4_fp8_scaled16<T>(low, high, inverse_beta + 16 * (u - input_units), 0.0f, t);
    } else {
#pragma unroll
        for (int i = 0; i < 16; i++) t[i] = 0.0f;
    }
}

/// The maximum of `value` over the `row_threads` threads of each row group (every thread gets its row's).
NK_DEVICE float w4a4_fp8_row_max(float value, int row_threads) {
    __shared__ float partial[32];
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xFFFFFFFFu, value, offset));
    if (row_threads <= 32) return value;
    const int warp = threadIdx.x >> 5, warps_per_row = row_threads >> 5;
    if ((threadIdx.x & 31) == 0) partial[warp] = value;
    __syncthreads();
    const int first = warp / warps_per_row * warps_per_row;
    float result = partial[first];
    for (int w = 1; w < warps_per_row; w++) result = fmaxf(result, partial[first + w]);
    return result;
}

template <class T, bool SHIFTED>
NK_DEVICE void w4a4_fp8_quantize(const u16* __restrict__ x, const float* __restrict__ inverse_smooth,
                                 const u16* __restrict__ low_rank, const float* __restrict__ inverse_beta,
                                 u8* __restrict__ codes, float* __restrict__ scales, int rows, int k, int rank,
                                 int depth, int row_threads) {
    const int lane = threadIdx.x & (row_threads - 1);
    const i64 row = (i64)blockIdx.x * (blockDim.x / row_threads) + threadIdx.x / row_threads;
    const bool active = row < rows;  // inactive threads still take part in the barrier of w4a4_fp8_row_max
    const int input_units = k / 16, rank_units = rank / 16, units = depth / 16;
    const uint4* input = reinterpret_cast<const uint4*>(x + row * k);
    const uint4* projected = reinterpret_cast<const uint4*>(low_rank + row * rank);

    uint4 low[W4A4_FP8_UNITS], high[W4A4_FP8_UNITS];
#pragma unroll
    for (int j = 0; j < W4A4_FP8_UNITS; j++) {
        const int u = lane + j * row_threads;
        low[j] = high[j] = make_uint4(0, 0, 0, 0);
        if (active && u < input_units) {
            low[j] = input[2 * u];
            high[j] = input[2 * u + 1];
        } else if (active && u < input_units + rank_units) {
            low[j] = projected[2 * (u - input_units)];
            high[j] = projected[2 * (u - input_units) + 1];
        }
    }
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < W4A4_FP8_UNITS; j++) {
        const int u = lane + j * row_threads;
        if (u < units) {
            float t[16];
            w4a4_fp8_unit_values<T, SHIFTED>(u, low[j], high[j], input_units, rank_units, inverse_smooth, inverse_beta, t);
#pragma unroll
            for (int i = 0; i < 16; i++) amax = fmaxf(amax, fabsf(t[i]));
        }
    }
    amax = w4a4_fp8_row_max(amax, row_threads);
    if (!active) return;
    const float factor = amax > 0.0f ? __fdiv_rn(W4A4_FP8_MAX, amax) : 0.0f;
    if (lane == 0) scales[row] = __fdiv_rn(amax, W4A4_FP8_MAX);

    uint4* output = reinterpret_cast<uint4*>(codes + row * depth);
#pragma unroll
    for (int j = 0; j < W4A4_FP8_UNITS; j++) {
        const int u = lane + j * row_threads;
        if (u < units) {
            float t[16];
            w4a4_fp8_unit_values<T, SHIFTED>(u, low[j], high[j], input_units, rank_units, inverse_smooth, inverse_beta, t);
            output[u] = make_uint4(nk_e4m3_pack4(t[0] * factor, t[1] * factor, t[2] * factor, t[3] * factor),
                                   nk_e4m3_pack4(t[4] * factor, t[5] * factor, t[6] * factor, t[7] * factor),
                                   nk_e4m3_pack4(t[8] * factor, t[9] * factor, t[10] * factor, t[11] * factor),
                                   nk_e4m3_pack4(t[12] * factor, t[13] * factor, t[14] * factor, t[15] * factor));
        }
    }
}

#define W4A4_FP8_QUANTIZE_ARGS                                                                                     \
    const u16* __restrict__ x, const float* __restrict__ inverse_smooth, const u16* __restrict__ low_rank,             \
        const float* __restrict__ inverse_beta, u8* __restrict__ codes, float* __restrict__ scales, int rows, int k, \
        int rank, int depth, int row_threads
#define W4A4_FP8_QUANTIZE_PASS x, inverse_smooth, low_rank, inverse_beta, codes, scales, rows, k, rank, depth, row_threads

NK_KERNEL void w4a4_fp8_quantize_bf16(W4A4_FP8_QUANTIZE_ARGS) { w4a4_fp8_quantize<NKBFloat16, false>(W4A4_FP8_QUANTIZE_PASS); }
NK_KERNEL void w4a4_fp8_quantize_bf16_shifted(W4A4_FP8_QUANTIZE_ARGS) { w4a4_fp8_quantize<NKBFloat16, true>(W4A4_FP8_QUANTIZE_PASS); }
NK_KERNEL void w4a4_fp8_quantize_f16(W4A4_FP8_QUANTIZE_ARGS) { w4a4_fp8_quantize<NKFloat16, false>(W4A4_FP8_QUANTIZE_PASS); }
NK_KERNEL void w4a4_fp8_quantize_f16_shifted(W4A4_FP8_QUANTIZE_ARGS) { w4a4_fp8_quantize<NKFloat16, true>(W4A4_FP8_QUANTIZE_PASS); }
