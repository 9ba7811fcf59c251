// w4a4_fp8_quantize.cuh: the per-row math of the fast (Hopper) W4A4 path's activation quantization, shared by the
// kernels that write a layer's e4m3 codes: its own activation pass (w4a4_fp8_quantize.cu) and the LayerNorm that
// writes them for the layer it feeds (ops_norm.cu). Per row, in fp32: t = x · inverse_smooth (x + 0.171875 first
// when SHIFTED); amax = max |t| over the row; scale = amax / 448 (IEEE division); codes = e4m3(t · (448 / amax))
// (IEEE division, nearest-even, saturating; an all-zero row gets scale 0 and zero codes); zero codes from K to
// `depth`. Every kernel built from these helpers gives the same codes and scales for the same 16-bit row, however
// its threads split the row (the maximum does not depend on the order).
#pragma once
#include "w4a4_half.cuh"
#include "w4a4_fp8.cuh"

/// The eight smoothing factors 1/smooth of one 16-byte load of x.
NK_DEVICE void w4a4_fp8_factors8(const float4* inverse, int v, float f[8]) {
    const float4 a = inverse[2 * v], b = inverse[2 * v + 1];
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}

/// Eight smoothed values of one 16-byte load, `f` their factors. `T` needs only `to_float` of the raw 16 bits.
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

/// The code factor 448 / amax of a row (0 for an all-zero row) from each thread's `amax` over its part of the row;
/// thread 0 stores the row's scale amax / 448 to `scale`. Every thread of the block must call it (one barrier).
NK_DEVICE float w4a4_fp8_row_factor(float amax, float* scale) {
    amax = w4a4_fp8_block_max(amax);
    if (threadIdx.x == 0) *scale = __fdiv_rn(amax, W4A4_FP8_MAX);
    return amax > 0.0f ? __fdiv_rn(W4A4_FP8_MAX, amax) : 0.0f;
}

/// Zero codes from column `k` to `depth` of a row, written by the block's threads.
NK_DEVICE void w4a4_fp8_pad_codes(u8* row_codes, int k, int depth) {
    for (int c = k + (int)threadIdx.x; c < depth; c += (int)blockDim.x) row_codes[c] = 0;
}
