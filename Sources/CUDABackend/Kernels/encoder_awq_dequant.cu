// encoder_awq_dequant.cu: Nunchaku's 4-bit AWQ T5 linears (TinyChat W4A16 layout, `W4Linear`) expanded to a bf16
// weight [N, K] for the dense GEMM: w[n][k] = q·scales[k/G][n] + scaled_zeros[k/G][n] in float32 (multiply and add
// rounded separately, no FMA, as the CPU reference computes it), rounded once to bf16.
//
// `qweight` is the checkpoint's int16 [N/4, K] array read as u16: code q of (n, k) is nibble (k % 32) / 8 of
// element (n/4)·K + (k/64)·64 + (n%4)·16 + ((k/32)%2)·8 + k%8 (TinyChat's interleave of four rows).
// One thread writes eight consecutive k of one row (one 16-byte store); K must be a multiple of 64, N of 4, the
// group size G a multiple of 8. Scales and zeros are float32 [groups, N].
#include "nunchaku_common.cuh"

NK_KERNEL void nunchaku_encoder_awq_dequant_bf16(const u16* qweight, const float* scales, const float* zeros, u16* weight,
                                                 int outFeatures, int inFeatures, int groupSize) {
    const i64 units = (i64)outFeatures * (inFeatures / 8);
    for (i64 unit = nk_global_thread_index(); unit < units; unit += nk_grid_thread_count()) {
        const int row = (int)(unit / (inFeatures / 8));
        const int first = (int)(unit % (inFeatures / 8)) * 8;
        const i64 packed = (i64)(row / 4) * inFeatures + (first / 64) * 64 + (row % 4) * 16 + ((first / 32) % 2) * 8;
        const uint4 words = *reinterpret_cast<const uint4*>(qweight + packed);
        const u32 pairs[4] = {words.x, words.y, words.z, words.w};
        const int shift = 4 * ((first % 32) / 8);
        const i64 group = (i64)(first / groupSize) * outFeatures + row;
        const float scale = scales[group], zero = zeros[group];
        u32 out[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float low = __fadd_rn(__fmul_rn((float)((pairs[i] >> shift) & 15u), scale), zero);
            const float high = __fadd_rn(__fmul_rn((float)((pairs[i] >> (16 + shift)) & 15u), scale), zero);
            out[i] = nk_pack_bf16x2(low, high);
        }
        *reinterpret_cast<uint4*>(weight + (i64)row * inFeatures + first) = make_uint4(out[0], out[1], out[2], out[3]);
    }
}
