// ops_norm.cu: LayerNorm (no affine) optionally fused with adaLN modulation, and RMSNorm with a weight.
//
// Statistics are accumulated in float32; the output is rounded once to the activation format. Rows are the
// contiguous last dimension; its width must be a multiple of 8 (LayerNorm) or 4 (RMSNorm) so rows can be read
// with vector loads (the Swift wrappers check this before launching).
#include "ops_common.cuh"

/// Chunks of eight values a LayerNorm thread holds in registers: the launch gives each row at least
/// width / (8 · kLayerNormChunks) threads (`CUDAContext.layerNormThreads`).
constexpr int kLayerNormChunks = 4;

/// One block per row, the row read once into registers (chunk c of a thread is `threadIdx.x + c·blockDim.x`): mean,
/// then the variance of the centred values (two passes over the registers, so no cancellation), then
/// `y = (x − mean)·rstd`, and when `shift` and `scale` are given (both or neither)
/// `y = y·(scaleOffset + scale[sample·scaleStride + i]) + shift[sample·shiftStride + i]` with
/// `sample = row / tokensPerSample` (chunks of an adaLN modulation table, so the strides may exceed the width).
template <class T>
NK_DEVICE void layer_norm(const u16* __restrict__ x, u16* __restrict__ y, const u16* __restrict__ shift,
                          i64 shiftStride, const u16* __restrict__ scale, i64 scaleStride, float scaleOffset,
                          int width, int tokensPerSample, float eps) {
    __shared__ float scratch[32];
    const i64 row = blockIdx.x;
    const u16* input = x + row * width;
    u16* output = y + row * width;
    const int chunks = width / 8;
    float values[kLayerNormChunks][8];
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < kLayerNormChunks; ++c) {
        const int chunk = threadIdx.x + c * blockDim.x;
        if (chunk >= chunks) break;
        nk_load8<T>(input + chunk * 8, values[c]);
#pragma unroll
        for (int i = 0; i < 8; ++i) sum += values[c][i];
    }
    const float mean = nk_block_sum(sum, scratch) / (float)width;
    float squares = 0.0f;
#pragma unroll
    for (int c = 0; c < kLayerNormChunks; ++c) {
        if (threadIdx.x + c * blockDim.x >= chunks) break;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const float centred = values[c][i] - mean;
            squares += centred * centred;
        }
    }
    const float rstd = rsqrtf(nk_block_sum(squares, scratch) / (float)width + eps);
    const i64 sample = row / tokensPerSample;
    const u16* sampleShift = shift ? shift + sample * shiftStride : nullptr;
    const u16* sampleScale = scale ? scale + sample * scaleStride : nullptr;
#pragma unroll
    for (int c = 0; c < kLayerNormChunks; ++c) {
        const int chunk = threadIdx.x + c * blockDim.x;
        if (chunk >= chunks) break;
#pragma unroll
        for (int i = 0; i < 8; ++i) values[c][i] = (values[c][i] - mean) * rstd;
        if (sampleShift && sampleScale) {
            float shifts[8], scales[8];
            nk_load8<T>(sampleShift + chunk * 8, shifts);
            nk_load8<T>(sampleScale + chunk * 8, scales);
#pragma unroll
            for (int i = 0; i < 8; ++i) values[c][i] = values[c][i] * (scaleOffset + scales[i]) + shifts[i];
        }
        nk_store8<T>(output + chunk * 8, values[c]);
    }
}

NK_KERNEL void nunchaku_layernorm_bf16(const u16* x, u16* y, const u16* shift, i64 shiftStride, const u16* scale,
                                         i64 scaleStride, float scaleOffset, int width, int tokensPerSample, float eps) {
    layer_norm<nk_bf16>(x, y, shift, shiftStride, scale, scaleStride, scaleOffset, width, tokensPerSample, eps);
}

NK_KERNEL void nunchaku_layernorm_f16(const u16* x, u16* y, const u16* shift, i64 shiftStride, const u16* scale,
                                        i64 scaleStride, float scaleOffset, int width, int tokensPerSample, float eps) {
    layer_norm<nk_f16>(x, y, shift, shiftStride, scale, scaleStride, scaleOffset, width, tokensPerSample, eps);
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
