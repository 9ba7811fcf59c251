// ops_qkv_heads.cu: the attention heads of one token stream from its fused q ‖ k ‖ v projection, in one pass:
// per-head RMSNorm of q and k (float32 weight), rounded to the activation format as ops_norm.cu's rmsnorm stores
// it, then RoPE on adjacent pairs as ops_rotary.cu computes it; v copied. Each head is written into joint
// [B, J, H, D] buffers at a token offset (FLUX: the text stream at 0, the image stream after it), which replaces a
// block's split, RMSNorm, RoPE and concat passes.
//
// qkv is [B, S, 3, H, D] (the projection's [B, S, 3·H·D]); cos and sin are float32 [J, D] tables of the joint
// sequence. One warp per (token, part) walks all H heads, lane l holding elements 4l…4l+3 of each (D ≤ 128, a
// multiple of 4): the token's cos/sin rows and the norm weight are read once, not once per head, and four heads'
// loads are in flight before their sums are reduced (docs/kernels-ops.md has the timing).
//
// The `…_fp8_…` entry points (D = 128) write the float8 operands of the e4m3 attention kernel instead: q and k as
// e4m3 codes of the rotated float32 value times a fixed factor (448 over a bound of |q| or |k| known from the norm
// weight, AttentionFP8Heads.swift), v in the activation format plus each (sample, head)'s max |v| (atomic max of
// the float bits into `valueMaxima`, zeroed before the first stream), from which attention_fp8_operands.cu's
// `…_value_codes` pass makes the transposed v codes. The arithmetic is IEEE float32 in a fixed order (no
// approximate reciprocal square root, no contracted products), so the CPU reference (AttentionFP8HeadsReference)
// computes the same codes bit for bit.
#include "ops_common.cuh"
#include "w4a4_fp8.cuh"

constexpr int kHeadsInFlight = 4;

/// The sum over the warp of the squares of the lane's four values (packed 16-bit), in every lane.
template <class T>
NK_DEVICE float head_squares(uint2 packed) {
    const float2 low = T::unpack2(packed.x), high = T::unpack2(packed.y);
    float sum = __fmul_rn(low.x, low.x);
    sum = __fmaf_rn(low.y, low.y, sum);
    sum = __fmaf_rn(high.x, high.x, sum);
    sum = __fmaf_rn(high.y, high.y, sum);
    return nk_warp_sum(sum);
}

/// The lane's four values normalized by the head's sum of squares, times the weight, rounded to the activation
/// format, then rotated (pairs (x, y) → (x·cos − y·sin, y·cos + x·sin)); float32.
template <class T>
NK_DEVICE float4 normalized_rotated(uint2 packed, float squares, int headDim, float eps, float4 w, float4 c, float4 s) {
    const float inverseRMS = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(squares, (float)headDim), eps)));
    const float2 low = T::unpack2(packed.x), high = T::unpack2(packed.y);
    const float2 a = T::unpack2(T::pack2(__fmul_rn(__fmul_rn(low.x, inverseRMS), w.x), __fmul_rn(__fmul_rn(low.y, inverseRMS), w.y)));
    const float2 b = T::unpack2(T::pack2(__fmul_rn(__fmul_rn(high.x, inverseRMS), w.z), __fmul_rn(__fmul_rn(high.y, inverseRMS), w.w)));
    return make_float4(__fsub_rn(__fmul_rn(a.x, c.x), __fmul_rn(a.y, s.x)), __fadd_rn(__fmul_rn(a.y, c.y), __fmul_rn(a.x, s.y)),
                       __fsub_rn(__fmul_rn(b.x, c.z), __fmul_rn(b.y, s.z)), __fadd_rn(__fmul_rn(b.y, c.w), __fmul_rn(b.x, s.w)));
}

/// The largest of `value` over the warp, in every lane.
NK_DEVICE float warp_max(float value) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xFFFFFFFFu, value, offset));
    return value;
}

/// The float8 outputs of the `…_fp8_…` entry points (see the file comment); D = 128.
struct FP8HeadsOutput {
    u8* queryCodes;
    u8* keyCodes;
    u32* valueMaxima;  // float bits of max |v| per (sample, head), at (sample · H + head) · maximaStride
    int maximaStride;
    float queryFactor;
    float keyFactor;
};

/// `Codes` false: q, k, v in the activation format at `query`, `key`, `value`; true: `fp8` as above, v at `value`.
template <class T, bool Codes>
NK_DEVICE void qkv_heads(const u16* __restrict__ qkv, u16* __restrict__ query, u16* __restrict__ key,
                         u16* __restrict__ value, FP8HeadsOutput fp8, const float* __restrict__ queryNorm,
                         const float* __restrict__ keyNorm, const float* __restrict__ cosines,
                         const float* __restrict__ sines, i64 units, int tokens, int heads, int headDim, int jointTokens,
                         int tokenOffset, float eps) {
    const int lane = threadIdx.x & 31;
    // unit = (sample · tokens + token) · 3 + part: the input's order, so a warp reads one run of H·D elements.
    const i64 unit = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (unit >= units) return;  // whole warps leave together; no block-wide barrier follows
    const int part = (int)(unit % 3);
    const i64 streamToken = unit / 3;
    const i64 sample = streamToken / tokens;
    const int position = (int)(streamToken % tokens) + tokenOffset;
    const u16* input = qkv + unit * heads * headDim;
    const i64 row = (sample * jointTokens + position) * heads * headDim;  // the token's first element in [B, J, H, D]
    const int quads = headDim / 4;
    if (part == 2) {
        if constexpr (Codes) {
            // D = 128: every lane holds four values of each head; copied, and each head's max |v| merged into its
            // slot. Lanes 0-3 first read the four slots (from L2): a warp whose maximum is not larger than what the
            // slot already holds skips its atomic (the slots only grow, so this never loses a maximum), which keeps
            // the atomics on each slot's line from queueing (one per token otherwise).
            for (int first = 0; first < heads; first += kHeadsInFlight) {
                uint2 packed[kHeadsInFlight];
#pragma unroll
                for (int j = 0; j < kHeadsInFlight; ++j) {
                    packed[j] = first + j < heads ? *reinterpret_cast<const uint2*>(input + (first + j) * headDim + lane * 4)
                                                  : make_uint2(0, 0);
                }
                u32* slots = fp8.valueMaxima + (sample * heads + first) * fp8.maximaStride;
                const u32 seen = lane < kHeadsInFlight && first + lane < heads ? __ldcg(slots + lane * fp8.maximaStride) : 0u;
#pragma unroll
                for (int j = 0; j < kHeadsInFlight; ++j) {
                    if (first + j >= heads) break;
                    *reinterpret_cast<uint2*>(value + row + (first + j) * headDim + lane * 4) = packed[j];
                    const float2 low = T::unpack2(packed[j].x), high = T::unpack2(packed[j].y);
                    const u32 largest = __float_as_uint(
                        warp_max(fmaxf(fmaxf(fabsf(low.x), fabsf(low.y)), fmaxf(fabsf(high.x), fabsf(high.y)))));
                    const u32 known = __shfl_sync(0xFFFFFFFFu, seen, j);
                    if (lane == 0 && largest > known) atomicMax(slots + j * fp8.maximaStride, largest);
                }
            }
        } else {
            for (int quad = lane; quad < heads * quads; quad += 32)
                *reinterpret_cast<uint2*>(value + row + quad * 4) = *reinterpret_cast<const uint2*>(input + quad * 4);
        }
        return;
    }
    const bool active = lane < quads;
    float4 w = make_float4(0.0f, 0.0f, 0.0f, 0.0f), c = w, s = w;
    if (active) {
        w = *reinterpret_cast<const float4*>((part == 0 ? queryNorm : keyNorm) + lane * 4);
        c = *reinterpret_cast<const float4*>(cosines + (i64)position * headDim + lane * 4);
        s = *reinterpret_cast<const float4*>(sines + (i64)position * headDim + lane * 4);
    }
    const float factor = part == 0 ? fp8.queryFactor : fp8.keyFactor;
    for (int first = 0; first < heads; first += kHeadsInFlight) {
        uint2 packed[kHeadsInFlight];
        float squares[kHeadsInFlight];
#pragma unroll
        for (int j = 0; j < kHeadsInFlight; ++j) {
            const bool present = active && first + j < heads;
            packed[j] = present ? *reinterpret_cast<const uint2*>(input + (first + j) * headDim + lane * 4) : make_uint2(0, 0);
        }
#pragma unroll
        for (int j = 0; j < kHeadsInFlight; ++j) squares[j] = head_squares<T>(packed[j]);
#pragma unroll
        for (int j = 0; j < kHeadsInFlight; ++j) {
            if (!active || first + j >= heads) continue;
            const float4 y = normalized_rotated<T>(packed[j], squares[j], headDim, eps, w, c, s);
            const i64 offset = row + (first + j) * headDim + lane * 4;
            if constexpr (Codes) {
                *reinterpret_cast<u32*>((part == 0 ? fp8.queryCodes : fp8.keyCodes) + offset) = nk_e4m3_pack4(
                    __fmul_rn(y.x, factor), __fmul_rn(y.y, factor), __fmul_rn(y.z, factor), __fmul_rn(y.w, factor));
            } else {
                *reinterpret_cast<uint2*>((part == 0 ? query : key) + offset) = make_uint2(T::pack2(y.x, y.y), T::pack2(y.z, y.w));
            }
        }
    }
}

NK_KERNEL void nunchaku_qkv_heads_bf16(const u16* qkv, u16* query, u16* key, u16* value, const float* queryNorm,
                                       const float* keyNorm, const float* cosines, const float* sines, i64 units,
                                       int tokens, int heads, int headDim, int jointTokens, int tokenOffset, float eps) {
    qkv_heads<nk_bf16, false>(qkv, query, key, value, FP8HeadsOutput{}, queryNorm, keyNorm, cosines, sines, units,
                              tokens, heads, headDim, jointTokens, tokenOffset, eps);
}

NK_KERNEL void nunchaku_qkv_heads_f16(const u16* qkv, u16* query, u16* key, u16* value, const float* queryNorm,
                                      const float* keyNorm, const float* cosines, const float* sines, i64 units,
                                      int tokens, int heads, int headDim, int jointTokens, int tokenOffset, float eps) {
    qkv_heads<nk_f16, false>(qkv, query, key, value, FP8HeadsOutput{}, queryNorm, keyNorm, cosines, sines, units,
                             tokens, heads, headDim, jointTokens, tokenOffset, eps);
}

// D = 128. queryCodes, keyCodes [B, J, H, 128] e4m3; value [B, J, H, 128] bf16 / f16; valueMaxima u32 with a slot
// every maximaStride words per (sample, head), zero (or an earlier stream's maxima) on entry.
#define QKV_HEADS_FP8_ARGS                                                                                      \
    const u16 *qkv, u8 *queryCodes, u8 *keyCodes, u16 *value, u32 *valueMaxima, int maximaStride, float queryFactor, \
        float keyFactor, const float *queryNorm, const float *keyNorm, const float *cosines, const float *sines,      \
        i64 units, int tokens, int heads, int jointTokens, int tokenOffset, float eps
#define QKV_HEADS_FP8_PASS(T)                                                                                            \
    qkv_heads<T, true>(qkv, nullptr, nullptr, value,                                                                     \
                       FP8HeadsOutput{queryCodes, keyCodes, valueMaxima, maximaStride, queryFactor, keyFactor}, queryNorm, \
                       keyNorm, cosines, sines, units, tokens, heads, 128, jointTokens, tokenOffset, eps)

NK_KERNEL void nunchaku_qkv_heads_fp8_bf16(QKV_HEADS_FP8_ARGS) { QKV_HEADS_FP8_PASS(nk_bf16); }
NK_KERNEL void nunchaku_qkv_heads_fp8_f16(QKV_HEADS_FP8_ARGS) { QKV_HEADS_FP8_PASS(nk_f16); }
