// w4a4_fp8_weights.cu: the weight side of the fast (Hopper) W4A4 path: a layer's 4-bit codes (kept 4-bit in memory)
// expanded into a float8 e4m3 scratch with each group's scale folded in, relative to a per-channel unit; the GEMM
// applies the channel scale in its epilogue (docs/hopper.md). The CPU reference (`W4A4FastReference.foldedWeights`)
// does the same fp32 operations: the codes are bit-identical.
//
// INT4 (groups of 64): w8[n, k] = e4m3(q[n, k] · (wscale[n, k/64] / unit[n])), the ratio an IEEE fp32 division
// (0 when unit[n] is 0), unit[n] = max_g |wscale[g, n]| · 8/448 computed at upload, so |q · ratio| ≤ 448.
// NVFP4 (groups of 16, e4m3 micro-scales): w8[n, k] = e4m3(c2[n, k] · (micro[n, k/16] · (0.5 / unit[n]))), c2 the
// E2M1 code's value times two (0, ±1, ±2, ±3, ±4, ±6, ±8, ±12), unit[n] a power of two ≥ max_g micro[g, n] · 6/448:
// the products are exact in fp32, so the only rounding is the final one to e4m3.
//
// Columns K+offset..K+offset+R of each output row are the layer's low-rank up-projection, already in float8 (made
// at upload, `up_codes` [N, R]): copied, so one GEMM computes both branches (w4a4_fp8_quantize.cu); the other
// columns past K are zero (the padding of K + R to a multiple of 128, and, when layers share one activation pass,
// the columns of the other layers' low-rank values: offset > 0 or more columns after R).
//
// Grid: one thread per U × 16 output columns, U = 2 for INT4 (16 bytes of the canonical qweight [N, K/2], low
// nibble first, one group scale, two 16-byte stores: 20 % faster than U = 1 at FLUX's shapes, docs/hopper.md
// "Session 6: weight expansion") and U = 1 for NVFP4 (8 bytes, one micro-scale; U = 2 was not faster); columns past
// K are 16 bytes of up_codes or zeros per unit. 32-bit indices (N · depth < 2^31). Scales are [N, K/G] (transposed
// at upload, so a warp's scale loads are contiguous). out u8 [N, depth]; K a multiple of 16 · U (INT4: of 64), R
// and offset multiples of 16, depth of 128, K + offset + R ≤ depth.
#include "w4a4_half.cuh"
#include "w4a4_fp8.cuh"

/// Where this thread's U output units (16 columns each) lie: its row and first unit; copies the low-rank codes or
/// zeros of units past K and returns false for those (K / 16 is a multiple of U: the U units are all before K or
/// all past it).
template <int U>
NK_DEVICE bool w4a4_fp8_weight_units(const uint4* __restrict__ up_codes, uint4* __restrict__ out, int n, int k,
                                     int rank, int depth, int offset, int& row, int& first) {
    const u32 per_row = (u32)depth / (16 * U), slot = blockIdx.x * blockDim.x + threadIdx.x;
    if (slot >= (u32)n * per_row) return false;
    row = (int)(slot / per_row);
    first = (int)(slot - (u32)row * per_row) * U;
    if (first < k / 16) return true;
#pragma unroll
    for (int j = 0; j < U; j++) {
        const int up_unit = first + j - (k + offset) / 16;
        out[row * (depth / 16) + first + j] =
            up_unit >= 0 && up_unit < rank / 16 ? up_codes[row * (rank / 16) + up_unit] : make_uint4(0, 0, 0, 0);
    }
    return false;
}

/// 16 values (v[i] · ratio) as one 16-byte store.
NK_DEVICE uint4 w4a4_fp8_pack16(const float v[16], float ratio) {
    return make_uint4(nk_e4m3_pack4(v[0] * ratio, v[1] * ratio, v[2] * ratio, v[3] * ratio),
                      nk_e4m3_pack4(v[4] * ratio, v[5] * ratio, v[6] * ratio, v[7] * ratio),
                      nk_e4m3_pack4(v[8] * ratio, v[9] * ratio, v[10] * ratio, v[11] * ratio),
                      nk_e4m3_pack4(v[12] * ratio, v[13] * ratio, v[14] * ratio, v[15] * ratio));
}

/// 16 signed INT4 codes (two words, low nibble first) times `ratio`, as e4m3.
NK_DEVICE uint4 w4a4_fp8_int4_unit(u32 low, u32 high, float ratio) {
    float v[16];
#pragma unroll
    for (int i = 0; i < 16; i++) v[i] = (float)((int)((i < 8 ? low : high) << (28 - 4 * (i % 8))) >> 28);
    return w4a4_fp8_pack16(v, ratio);
}

/// Two units per thread: both lie in one 64-group (first is even), so one scale and one 16-byte code load.
template <class T>
NK_DEVICE void w4a4_fp8_expand_int4(const uint4* __restrict__ qweight, const u16* __restrict__ wscales,
                                    const float* __restrict__ units, const uint4* __restrict__ up_codes,
                                    uint4* __restrict__ out, int n, int k, int rank, int depth, int offset) {
    int row, first;
    if (!w4a4_fp8_weight_units<2>(up_codes, out, n, k, rank, depth, offset, row, first)) return;
    const float scale = units[row];
    const float ratio = scale > 0.0f ? __fdiv_rn(T::to_float(wscales[row * (k / 64) + first / 4]), scale) : 0.0f;
    const uint4 words = qweight[row * (k / 32) + first / 2];
    uint4* target = out + row * (depth / 16) + first;
    target[0] = w4a4_fp8_int4_unit(words.x, words.y, ratio);
    target[1] = w4a4_fp8_int4_unit(words.z, words.w, ratio);
}

NK_DEVICE void w4a4_fp8_expand_nvfp4(const uint2* __restrict__ qweight, const u8* __restrict__ micro_scales,
                                     const float* __restrict__ units, const uint4* __restrict__ up_codes,
                                     uint4* __restrict__ out, int n, int k, int rank, int depth, int offset) {
    int row, unit;
    if (!w4a4_fp8_weight_units<1>(up_codes, out, n, k, rank, depth, offset, row, unit)) return;
    const float ratio = nk_e4m3_value(micro_scales[row * (k / 16) + unit]) * __fdiv_rn(0.5f, units[row]);
    const uint2 words = qweight[row * (k / 16) + unit];
    float v[16];
#pragma unroll
    for (int i = 0; i < 16; i++) {
        const u32 code = ((i < 8 ? words.x : words.y) >> (4 * (i % 8))) & 0xFu;
        const int magnitude = (int)((0x0C08060403020100ull >> (8 * (code & 7u))) & 0xFFu);
        v[i] = (float)((code & 8u) ? -magnitude : magnitude);  // code 8 (−0) becomes +0, as in the reference
    }
    out[row * (depth / 16) + unit] = w4a4_fp8_pack16(v, ratio);
}

#define W4A4_FP8_EXPAND_ARGS(CODES, SCALE)                                                                     \
    const CODES* __restrict__ qweight, const SCALE* __restrict__ wscales, const float* __restrict__ units, \
        const uint4* __restrict__ up_codes, uint4* __restrict__ out, int n, int k, int rank, int depth, int offset
#define W4A4_FP8_EXPAND_PASS qweight, wscales, units, up_codes, out, n, k, rank, depth, offset

NK_KERNEL void w4a4_fp8_expand_weights_bf16(W4A4_FP8_EXPAND_ARGS(uint4, u16)) { w4a4_fp8_expand_int4<NKBFloat16>(W4A4_FP8_EXPAND_PASS); }
NK_KERNEL void w4a4_fp8_expand_weights_f16(W4A4_FP8_EXPAND_ARGS(uint4, u16)) { w4a4_fp8_expand_int4<NKFloat16>(W4A4_FP8_EXPAND_PASS); }
NK_KERNEL void w4a4_fp8_expand_weights_nvfp4(W4A4_FP8_EXPAND_ARGS(uint2, u8)) { w4a4_fp8_expand_nvfp4(W4A4_FP8_EXPAND_PASS); }

// The gated epilogue's channel vectors, made per forward (FLUX's gated residual `x + gate ⊙ layer(a)` folded into
// the FP8 GEMM, whose C is x): scales_out[n] = channel_scales[n] · gate[n] in fp32, and when bias is given
// bias_out[n] = round(bias[n] · gate[n]) in the 16-bit type (the epilogue adds the bias after the scales). Up to
// four layers' vectors per launch (a block's gated layers, once its modulation is known): job blockIdx.y (the grid
// has one row per job given; the other slots are never read), one thread per channel.
struct W4A4FP8GatedJob {
    const u16* gate;
    const float* channel_scales;
    const u16* bias;
    float* scales_out;
    u16* bias_out;
    int n;
};

template <class T>
NK_DEVICE void w4a4_fp8_gated_channels(const W4A4FP8GatedJob& job) {
    const int channel = blockIdx.x * blockDim.x + threadIdx.x;
    if (channel >= job.n) return;
    const float factor = T::to_float(job.gate[channel]);
    job.scales_out[channel] = job.channel_scales[channel] * factor;
    if (job.bias != nullptr) job.bias_out[channel] = T::from_float(T::to_float(job.bias[channel]) * factor);
}

#define W4A4_FP8_GATED_JOB_ARGS(i)                                                                               \
    const u16 *gate##i, const float *channel_scales##i, const u16 *bias##i, float *scales_out##i, u16 *bias_out##i, \
        int n##i
#define W4A4_FP8_GATED_ARGS                                                                                        \
    W4A4_FP8_GATED_JOB_ARGS(0), W4A4_FP8_GATED_JOB_ARGS(1), W4A4_FP8_GATED_JOB_ARGS(2), W4A4_FP8_GATED_JOB_ARGS(3)
#define W4A4_FP8_GATED_JOB(i) W4A4FP8GatedJob{gate##i, channel_scales##i, bias##i, scales_out##i, bias_out##i, n##i}
#define W4A4_FP8_GATED_DISPATCH(T)                                                          \
    switch (blockIdx.y) {                                                                   \
        case 0: w4a4_fp8_gated_channels<T>(W4A4_FP8_GATED_JOB(0)); break;                   \
        case 1: w4a4_fp8_gated_channels<T>(W4A4_FP8_GATED_JOB(1)); break;                   \
        case 2: w4a4_fp8_gated_channels<T>(W4A4_FP8_GATED_JOB(2)); break;                   \
        default: w4a4_fp8_gated_channels<T>(W4A4_FP8_GATED_JOB(3)); break;                  \
    }

NK_KERNEL void w4a4_fp8_gated_channels_bf16(W4A4_FP8_GATED_ARGS) { W4A4_FP8_GATED_DISPATCH(NKBFloat16) }
NK_KERNEL void w4a4_fp8_gated_channels_f16(W4A4_FP8_GATED_ARGS) { W4A4_FP8_GATED_DISPATCH(NKFloat16) }
