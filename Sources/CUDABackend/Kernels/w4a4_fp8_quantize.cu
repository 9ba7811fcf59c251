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
// Grid: one block per row; block: 32…1024 threads (a multiple of 32, at least R), each taking 8 consecutive values
// per step and keeping its first eight steps in registers (K ≤ 64 · threads is read once; longer rows re-read the
// rest). The host gives short rows small blocks, so more rows are in flight per multiprocessor (one barrier per
// block; none with 32 threads). x [M, K] row-major (bf16/f16), inverse_smooth f32 [K], low_rank [M, R] (bf16/f16),
// inverse_beta f32 [R], codes u8 [M, depth], scales f32 [M].
// K and R must be multiples of 8, R ≤ 256, depth a multiple of 8 and at least K + R.
#include "w4a4_half.cuh"
#include "w4a4_fp8.cuh"

#define W4A4_FP8_CACHED_STEPS 8

/// Eight smoothed values of one 16-byte load.
template <class T, bool SHIFTED>
NK_DEVICE void w4a4_fp8_smooth8(uint4 values, const float4* inverse, int v, float t[8]) {
    const float4 a = inverse[2 * v], b = inverse[2 * v + 1];
    const float factors[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    const u32 words[4] = {values.x, values.y, values.z, values.w};
#pragma unroll
    for (int i = 0; i < 8; i++) {
        float value = T::to_float((i & 1) ? nk_high16(words[i / 2]) : nk_low16(words[i / 2]));
        if (SHIFTED) value += 0.171875f;
        t[i] = value * factors[i];
    }
}

/// The largest |t| of eight values.
template <class T, bool SHIFTED>
NK_DEVICE float w4a4_fp8_amax8(uint4 values, const float4* inverse, int v) {
    float t[8];
    w4a4_fp8_smooth8<T, SHIFTED>(values, inverse, v, t);
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; i++) amax = fmaxf(amax, fabsf(t[i]));
    return amax;
}

/// The eight codes of eight values, `factor` = 448 / amax.
template <class T, bool SHIFTED>
NK_DEVICE uint2 w4a4_fp8_codes8(uint4 values, const float4* inverse, int v, float factor) {
    float t[8];
    w4a4_fp8_smooth8<T, SHIFTED>(values, inverse, v, t);
    return make_uint2(nk_e4m3_pack4(t[0] * factor, t[1] * factor, t[2] * factor, t[3] * factor),
                      nk_e4m3_pack4(t[4] * factor, t[5] * factor, t[6] * factor, t[7] * factor));
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

template <class T, bool SHIFTED>
NK_DEVICE void w4a4_fp8_quantize(const u16* __restrict__ x, const float* __restrict__ inverse_smooth,
                                 const u16* __restrict__ low_rank, const float* __restrict__ inverse_beta,
                                 u8* __restrict__ codes, float* __restrict__ scales, int k, int rank, int depth) {
    const i64 row = blockIdx.x;
    const uint4* input = reinterpret_cast<const uint4*>(x + row * k);
    const float4* inverse = reinterpret_cast<const float4*>(inverse_smooth);
    const int vectors = k / 8;

    // Thread r < R holds the row's low-rank value r, already divided by beta.
    const float lora = threadIdx.x < rank ? T::to_float(low_rank[row * rank + threadIdx.x]) * inverse_beta[threadIdx.x] : 0.0f;
    uint4 cached[W4A4_FP8_CACHED_STEPS];
    float amax = fabsf(lora);
#pragma unroll
    for (int j = 0; j < W4A4_FP8_CACHED_STEPS; j++) {
        const int v = threadIdx.x + j * (int)blockDim.x;
        if (v < vectors) cached[j] = input[v];
    }
#pragma unroll
    for (int j = 0; j < W4A4_FP8_CACHED_STEPS; j++) {
        const int v = threadIdx.x + j * (int)blockDim.x;
        if (v < vectors) amax = fmaxf(amax, w4a4_fp8_amax8<T, SHIFTED>(cached[j], inverse, v));
    }
    for (int v = threadIdx.x + W4A4_FP8_CACHED_STEPS * (int)blockDim.x; v < vectors; v += blockDim.x)
        amax = fmaxf(amax, w4a4_fp8_amax8<T, SHIFTED>(input[v], inverse, v));
    amax = w4a4_fp8_block_max(amax);
    const float factor = amax > 0.0f ? __fdiv_rn(W4A4_FP8_MAX, amax) : 0.0f;
    if (threadIdx.x == 0) scales[row] = __fdiv_rn(amax, W4A4_FP8_MAX);

    u8* row_codes = codes + row * depth;
    uint2* output = reinterpret_cast<uint2*>(row_codes);
#pragma unroll
    for (int j = 0; j < W4A4_FP8_CACHED_STEPS; j++) {
        const int v = threadIdx.x + j * (int)blockDim.x;
        if (v < vectors) output[v] = w4a4_fp8_codes8<T, SHIFTED>(cached[j], inverse, v, factor);
    }
    for (int v = threadIdx.x + W4A4_FP8_CACHED_STEPS * (int)blockDim.x; v < vectors; v += blockDim.x)
        output[v] = w4a4_fp8_codes8<T, SHIFTED>(input[v], inverse, v, factor);
    // Codes of the low-rank values (thread c < R holds value c), then the zero padding.
    for (int c = threadIdx.x; c < depth - k; c += blockDim.x)
        row_codes[k + c] = c < rank ? (u8)(nk_e4m3x2(lora * factor, 0.0f) & 0xFFu) : (u8)0;
}

#define W4A4_FP8_QUANTIZE_ARGS                                                                         \
    const u16* __restrict__ x, const float* __restrict__ inverse_smooth, const u16* __restrict__ low_rank, \
        const float* __restrict__ inverse_beta, u8* __restrict__ codes, float* __restrict__ scales, int k, int rank, int depth
#define W4A4_FP8_QUANTIZE_PASS x, inverse_smooth, low_rank, inverse_beta, codes, scales, k, rank, depth

NK_KERNEL void w4a4_fp8_quantize_bf16(W4A4_FP8_QUANTIZE_ARGS) { w4a4_fp8_quantize<NKBFloat16, false>(W4A4_FP8_QUANTIZE_PASS); }
NK_KERNEL void w4a4_fp8_quantize_bf16_shifted(W4A4_FP8_QUANTIZE_ARGS) { w4a4_fp8_quantize<NKBFloat16, true>(W4A4_FP8_QUANTIZE_PASS); }
NK_KERNEL void w4a4_fp8_quantize_f16(W4A4_FP8_QUANTIZE_ARGS) { w4a4_fp8_quantize<NKFloat16, false>(W4A4_FP8_QUANTIZE_PASS); }
NK_KERNEL void w4a4_fp8_quantize_f16_shifted(W4A4_FP8_QUANTIZE_ARGS) { w4a4_fp8_quantize<NKFloat16, true>(W4A4_FP8_QUANTIZE_PASS); }
