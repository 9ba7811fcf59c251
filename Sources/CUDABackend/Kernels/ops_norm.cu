// ops_norm.cu: LayerNorm (no affine) optionally fused with adaLN modulation, also with the fast W4A4 path's
// activation quantization of its output (the codes of the layer it feeds instead of a 16-bit row), and RMSNorm with
// a weight.
//
// Statistics are accumulated in float32; the output is rounded once to the activation format. Rows are the
// contiguous last dimension; its width must be a multiple of 8 (LayerNorm) or 4 (RMSNorm) so rows can be read
// with vector loads (the Swift wrappers check this before launching).
#include "ops_common.cuh"
#include "w4a4_fp8_quantize.cuh"

/// Chunks of eight values a LayerNorm thread holds in registers: the launch gives each row at least
/// width / (8 · kLayerNormChunks) threads (`CUDAContext.layerNormThreads`).
constexpr int kLayerNormChunks = 4;

/// Calls `f(c, chunk)` for each chunk c this thread holds of a row of `width` values: chunk `threadIdx.x + c·blockDim.x`
/// (eight values), while it lies in the row.
template <class F>
NK_DEVICE void layer_norm_chunks(int width, F f) {
#pragma unroll
    for (int c = 0; c < kLayerNormChunks; ++c) {
        const int chunk = threadIdx.x + c * blockDim.x;
        if (chunk >= width / 8) break;
        f(c, chunk);
    }
}

/// The modulated LayerNorm of row `blockIdx.x` of x, left in `values` (`layer_norm_chunks`; chunks past the row are
/// not set). One block per row, the row read once into registers: mean, then the variance of the centred values
/// (two passes over the registers, so no cancellation), then `y = (x − mean)·rstd`, and when `shift` and `scale` are
/// given (both or neither) `y = y·(scaleOffset + scale[sample·scaleStride + i]) + shift[sample·shiftStride + i]` with
/// `sample = row / tokensPerSample` (chunks of an adaLN modulation table, so the strides may exceed the width). Every
/// thread of the block must call it (it synchronises).
template <class T>
NK_DEVICE void layer_norm_values(const u16* __restrict__ x, const u16* __restrict__ shift, i64 shiftStride,
                                 const u16* __restrict__ scale, i64 scaleStride, float scaleOffset, int width,
                                 int tokensPerSample, float eps, float (&values)[kLayerNormChunks][8]) {
    __shared__ float scratch[32];
    const i64 row = blockIdx.x;
    const u16* input = x + row * width;
    float sum = 0.0f;
    layer_norm_chunks(width, [&](int c, int chunk) {
        nk_load8<T>(input + chunk * 8, values[c]);
#pragma unroll
        for (int i = 0; i < 8; ++i) sum += values[c][i];
    });
    const float mean = nk_block_sum(sum, scratch) / (float)width;
    float squares = 0.0f;
    layer_norm_chunks(width, [&](int c, int) {
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const float centred = values[c][i] - mean;
            squares += centred * centred;
        }
    });
    const float rstd = rsqrtf(nk_block_sum(squares, scratch) / (float)width + eps);
    const i64 sample = row / tokensPerSample;
    const u16* sampleShift = shift ? shift + sample * shiftStride : nullptr;
    const u16* sampleScale = scale ? scale + sample * scaleStride : nullptr;
    layer_norm_chunks(width, [&](int c, int chunk) {
#pragma unroll
        for (int i = 0; i < 8; ++i) values[c][i] = (values[c][i] - mean) * rstd;
        if (sampleShift && sampleScale) {
            float shifts[8], scales[8];
            nk_load8<T>(sampleShift + chunk * 8, shifts);
            nk_load8<T>(sampleScale + chunk * 8, scales);
#pragma unroll
            for (int i = 0; i < 8; ++i) values[c][i] = values[c][i] * (scaleOffset + scales[i]) + shifts[i];
        }
    });
}

/// `layer_norm_values` of each row, rounded to T into y.
template <class T>
NK_DEVICE void layer_norm(const u16* __restrict__ x, u16* __restrict__ y, const u16* __restrict__ shift,
                          i64 shiftStride, const u16* __restrict__ scale, i64 scaleStride, float scaleOffset,
                          int width, int tokensPerSample, float eps) {
    float values[kLayerNormChunks][8];
    layer_norm_values<T>(x, shift, shiftStride, scale, scaleStride, scaleOffset, width, tokensPerSample, eps, values);
    u16* output = y + (i64)blockIdx.x * width;
    layer_norm_chunks(width, [&](int c, int chunk) { nk_store8<T>(output + chunk * 8, values[c]); });
}

NK_KERNEL void nunchaku_layernorm_bf16(const u16* x, u16* y, const u16* shift, i64 shiftStride, const u16* scale,
                                         i64 scaleStride, float scaleOffset, int width, int tokensPerSample, float eps) {
    layer_norm<nk_bf16>(x, y, shift, shiftStride, scale, scaleStride, scaleOffset, width, tokensPerSample, eps);
}

NK_KERNEL void nunchaku_layernorm_f16(const u16* x, u16* y, const u16* shift, i64 shiftStride, const u16* scale,
                                        i64 scaleStride, float scaleOffset, int width, int tokensPerSample, float eps) {
    layer_norm<nk_f16>(x, y, shift, shiftStride, scale, scaleStride, scaleOffset, width, tokensPerSample, eps);
}

/// `layer_norm_values` of each row as the input of a fast W4A4 layer (unshifted): each value rounded to T exactly as
/// `layer_norm` stores it, then quantized per row as the layer's activation pass quantizes the stored row
/// (w4a4_fp8_quantize.cuh: smoothing by `inverse_smooth` f32 [width], amax, scale, e4m3 codes). So codes u8
/// [rows, depth] (zero from `width`) and scales f32 [rows] are those of `nunchaku_layernorm_*` followed by
/// `w4a4_fp8_quantize_*` to the bit, without the 16-bit row in memory. depth a multiple of 8, at least `width`.
template <class T>
NK_DEVICE void layer_norm_fp8_quantize(const u16* __restrict__ x, const u16* __restrict__ shift, i64 shiftStride,
                                       const u16* __restrict__ scale, i64 scaleStride, float scaleOffset,
                                       const float* __restrict__ inverse_smooth, u8* __restrict__ codes,
                                       float* __restrict__ scales, int depth, int width, int tokensPerSample, float eps) {
    float values[kLayerNormChunks][8];
    layer_norm_values<T>(x, shift, shiftStride, scale, scaleStride, scaleOffset, width, tokensPerSample, eps, values);
    const float4* inverse = reinterpret_cast<const float4*>(inverse_smooth);
    float amax = 0.0f;
    layer_norm_chunks(width, [&](int c, int chunk) {
        w4a4_fp8_smooth8<T, false>(nk_pack8<T>(values[c]), inverse, chunk, values[c]);  // the stored row, smoothed
        amax = fmaxf(amax, w4a4_fp8_amax8(values[c]));
    });
    const i64 row = blockIdx.x;
    const float factor = w4a4_fp8_row_factor(amax, scales + row);
    u8* row_codes = codes + row * depth;
    layer_norm_chunks(width, [&](int c, int chunk) {
        reinterpret_cast<uint2*>(row_codes)[chunk] = w4a4_fp8_codes8(values[c], factor);
    });
    w4a4_fp8_pad_codes(row_codes, width, depth);
}

#define NK_LAYERNORM_FP8_QUANTIZE_ARGS                                                                                 \
    const u16* x, const u16* shift, i64 shiftStride, const u16* scale, i64 scaleStride, float scaleOffset,            \
        const float* inverseSmooth, u8* codes, float* scales, int depth, int width, int tokensPerSample, float eps
#define NK_LAYERNORM_FP8_QUANTIZE_PASS \
    x, shift, shiftStride, scale, scaleStride, scaleOffset, inverseSmooth, codes, scales, depth, width, tokensPerSample, eps

NK_KERNEL void nunchaku_layernorm_fp8_quantize_bf16(NK_LAYERNORM_FP8_QUANTIZE_ARGS) {
    layer_norm_fp8_quantize<nk_bf16>(NK_LAYERNORM_FP8_QUANTIZE_PASS);
}

NK_KERNEL void nunchaku_layernorm_fp8_quantize_f16(NK_LAYERNORM_FP8_QUANTIZE_ARGS) {
    layer_norm_fp8_quantize<nk_f16>(NK_LAYERNORM_FP8_QUANTIZE_PASS);
}

/// One warp per row, four elements per lane and step: `y = x·rsqrt(mean(x²) + eps)·weight` (weight in float32).
template <class T>
NK_DEVICE void rms_norm(const u16* __restrict__ x, u16* __restrict__ y, const float* __restrict__ weight, i64 rows,
                        int width, float eps) {
    const int lane = threadIdx.x & 31;
    const i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;  // whole warps leave together; no block-wide barrier follows
    const u16* input = x + row * width;
    u16* output = y + row * width;
    const int quads = width / 4;

    float squares = 0.0f;
    for (int quad = lane; quad < quads; quad += 32) {
        const uint2 packed = *reinterpret_cast<const uint2*>(input + quad * 4);
        const float2 low = T::unpack2(packed.x), high = T::unpack2(packed.y);
        squares += low.x * low.x + low.y * low.y + high.x * high.x + high.y * high.y;
    }
    const float inverseRMS = rsqrtf(nk_warp_sum(squares) / (float)width + eps);

    for (int quad = lane; quad < quads; quad += 32) {
        const uint2 packed = *reinterpret_cast<const uint2*>(input + quad * 4);
        const float2 low = T::unpack2(packed.x), high = T::unpack2(packed.y);
        const float4 w = *reinterpret_cast<const float4*>(weight + quad * 4);
        *reinterpret_cast<uint2*>(output + quad * 4) =
            make_uint2(T::pack2(low.x * inverseRMS * w.x, low.y * inverseRMS * w.y),
                       T::pack2(high.x * inverseRMS * w.z, high.y * inverseRMS * w.w));
    }
}

NK_KERNEL void nunchaku_rmsnorm_bf16(const u16* x, u16* y, const float* weight, i64 rows, int width, float eps) {
    rms_norm<nk_bf16>(x, y, weight, rows, width, eps);
}

NK_KERNEL void nunchaku_rmsnorm_f16(const u16* x, u16* y, const float* weight, i64 rows, int width, float eps) {
    rms_norm<nk_f16>(x, y, weight, rows, width, eps);
}
