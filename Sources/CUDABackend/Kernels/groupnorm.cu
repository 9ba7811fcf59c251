// groupnorm.cu: GroupNorm(G groups, affine) on channels-last bf16 feature maps [B, P pixels, C], optionally followed
// by SiLU, as the VAE decoder uses it: y = round((x − mean)·rstd·γ + β), then round(y·sigmoid(y)) when `silu`.
//
// Statistics in three launches: `sums` adds Σx per (sample, group) into float64 accumulators; called again with the
// first pass's sums it adds Σ(x − mean)² (the variance of the centred values, no cancellation); `finalize` turns
// them into float32 mean and rstd = 1/√(var + eps). `apply` normalises. In `sums` a block covers up to
// `pixelsPerBlock` pixels of one sample with C/2 · R threads (R = rows of pixels read at once): thread t always
// reads channel pair t % (C/2), so it accumulates one group in a register and adds it to the block's float64
// shared total once. C must be even, C/G even (a pair never straddles groups), G ≤ 128.
#include "nunchaku_common.cuh"

NK_KERNEL void nunchaku_groupnorm_sums_bf16(const u16* x, const double* firstSums, double* sums, int pixels,
                                            int channels, int groups, int pixelsPerBlock) {
    __shared__ double blockSums[128];
    const int pairsPerPixel = channels / 2;
    const int rowsAtOnce = blockDim.x / pairsPerPixel;
    const int sample = blockIdx.y;
    const int channelsPerGroup = channels / groups;
    for (int g = threadIdx.x; g < groups; g += blockDim.x) blockSums[g] = 0.0;
    __syncthreads();
    const int pair = threadIdx.x % pairsPerPixel;
    const int rowInStep = threadIdx.x / pairsPerPixel;
    const int group = (2 * pair) / channelsPerGroup;
    const i64 count = (i64)pixels * channelsPerGroup;
    const float mean = firstSums ? (float)(firstSums[sample * groups + group] / (double)count) : 0.0f;
    const int first = blockIdx.x * pixelsPerBlock;
    const int last = min(pixels, first + pixelsPerBlock);
    float total = 0.0f;
    if (rowInStep < rowsAtOnce) {
        const u32* base = reinterpret_cast<const u32*>(x + (i64)sample * pixels * channels);
        for (int pixel = first + rowInStep; pixel < last; pixel += rowsAtOnce) {
            const float2 values = nk_unpack_bf16x2(base[(i64)pixel * pairsPerPixel + pair]);
            if (firstSums) {
                const float a = values.x - mean, b = values.y - mean;
                total += a * a + b * b;
            } else {
                total += values.x + values.y;
            }
        }
        atomicAdd(&blockSums[group], (double)total);
    }
    __syncthreads();
    for (int g = threadIdx.x; g < groups; g += blockDim.x) atomicAdd(&sums[sample * groups + g], blockSums[g]);
}

NK_KERNEL void nunchaku_groupnorm_finalize(const double* sums, const double* squares, float* statistics, int entries,
                                           double count, double eps) {
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= entries) return;
    statistics[2 * index] = (float)(sums[index] / count);
    statistics[2 * index + 1] = (float)(1.0 / sqrt(squares[index] / count + eps));
}

NK_KERNEL void nunchaku_groupnorm_apply_bf16(const u16* x, u16* y, const float* statistics, const float* gamma,
                                             const float* beta, i64 pixelsPerSample, int channels, int groups, i64 total,
                                             int silu) {
    const int channelsPerGroup = channels / groups;
    for (i64 index = nk_global_thread_index(); index < total; index += nk_grid_thread_count()) {
        const int channel = (int)(index % channels);
        const i64 sample = index / ((i64)pixelsPerSample * channels);
        const i64 entry = sample * groups + channel / channelsPerGroup;
        const float normalized = (nk_bf16_to_float(x[index]) - statistics[2 * entry]) * statistics[2 * entry + 1];
        float value = nk_bf16_to_float(nk_float_to_bf16(normalized * gamma[channel] + beta[channel]));
        if (silu) value = value / (1.0f + expf(-value));
        y[index] = nk_float_to_bf16(value);
    }
}
