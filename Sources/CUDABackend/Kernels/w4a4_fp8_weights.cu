// w4a4_fp8_weights.cu: the weight side of the fast (Hopper) W4A4 path: a layer's INT4 codes (kept 4-bit in memory)
// expanded into a float8 e4m3 scratch with each 64-group's scale folded in, relative to a per-channel scale that
// the GEMM applies in its epilogue (docs/hopper.md).
//
// w8[n, k] = e4m3(q[n, k] · (wscale[k/64, n] / channel[n])), the ratio an IEEE fp32 division (0 when channel[n] is
// 0), channel[n] = max_g |wscale[g, n]| · 8/448 computed at upload, so |q · ratio| ≤ 448. The CPU reference
// (`W4A4FastReference.foldedWeights`) does the same operations: the codes are bit-identical.
//
// Columns K..K+R of each output row are the layer's low-rank up-projection, already in float8 (proj_up · beta /
// channel, made at upload, `up_codes` [N, R]): copied, so one GEMM computes both branches (w4a4_fp8_quantize.cu);
// columns K+R..depth are zero (the padding of K + R to a multiple of 128).
//
// Grid: one thread per 8 output columns (one u32 of the canonical qweight [N, K/2], low nibble first, 8 bytes of
// up_codes, or 8 zeros); out u8 [N, depth]. K, R and depth multiples of 8.
#include "w4a4_half.cuh"
#include "w4a4_fp8.cuh"

template <class T>
NK_DEVICE void w4a4_fp8_expand(const u32* __restrict__ qweight, const u16* __restrict__ wscales,
                               const float* __restrict__ channel, const uint2* __restrict__ up_codes,
                               uint2* __restrict__ out, int n, int k, int rank, int depth) {
    const i64 words_per_row = k / 8, out_words = depth / 8;
    const i64 slot = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (slot >= (i64)n * out_words) return;
    const int row = (int)(slot / out_words), column = (int)(slot % out_words);
    if (column >= words_per_row) {
        const int up_column = column - (int)words_per_row;
        out[slot] = up_column < rank / 8 ? up_codes[(i64)row * (rank / 8) + up_column] : make_uint2(0, 0);
        return;
    }
    const i64 index = (i64)row * words_per_row + column;
    const int group = column / 8;
    const float scale = channel[row];
    const float ratio = scale > 0.0f ? __fdiv_rn(T::to_float(wscales[(i64)group * n + row]), scale) : 0.0f;
    const u32 word = qweight[index];
    float v[8];
#pragma unroll
    for (int i = 0; i < 8; i++) v[i] = (float)((int)(word << (28 - 4 * i)) >> 28) * ratio;
    out[slot] = make_uint2(nk_e4m3_pack4(v[0], v[1], v[2], v[3]), nk_e4m3_pack4(v[4], v[5], v[6], v[7]));
}

#define W4A4_FP8_EXPAND_ARGS                                                                       \
    const u32* __restrict__ qweight, const u16* __restrict__ wscales, const float* __restrict__ channel, \
        const uint2* __restrict__ up_codes, uint2* __restrict__ out, int n, int k, int rank, int depth
#define W4A4_FP8_EXPAND_PASS qweight, wscales, channel, up_codes, out, n, k, rank, depth

NK_KERNEL void w4a4_fp8_expand_weights_bf16(W4A4_FP8_EXPAND_ARGS) { w4a4_fp8_expand<NKBFloat16>(W4A4_FP8_EXPAND_PASS); }
NK_KERNEL void w4a4_fp8_expand_weights_f16(W4A4_FP8_EXPAND_ARGS) { w4a4_fp8_expand<NKFloat16>(W4A4_FP8_EXPAND_PASS); }
