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
#include "ops_common.cuh"

constexpr int kHeadsInFlight = 4;

template <class T>
NK_DEVICE void qkv_heads(const u16* __restrict__ qkv, u16* __restrict__ query, u16* __restrict__ key,
                         u16* __restrict__ value, const float* __restrict__ queryNorm, const float* __restrict__ keyNorm,
                         const float* __restrict__ cosines, const float* __restrict__ sines, i64 units, int tokens,
                         int heads, int headDim, int jointTokens, int tokenOffset, float eps) {
    const int lane = threadIdx.x & 31;
    // unit = (sample · tokens + token) · 3 + part: the input's order, so a warp reads one run of H·D elements.
    const i64 unit = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (unit >= units) return;  // whole warps leave together; no block-wide barrier follows
    const int part = (int)(unit % 3);
    const i64 streamToken = unit / 3;
    const i64 sample = streamToken / tokens;
    const int position = (int)(streamToken % tokens) + tokenOffset;
    const u16* input = qkv + unit * heads * headDim;
    u16* output = (part == 0 ? query : part == 1 ? key : value) + (sample * jointTokens + position) * heads * headDim;
    const int quads = headDim / 4;
    if (part == 2) {
        for (int quad = lane; quad < heads * quads; quad += 32)
            *reinterpret_cast<uint2*>(output + quad * 4) = *reinterpret_cast<const uint2*>(input + quad * 4);
        return;
    }
    const bool active = lane < quads;
    float4 w = make_float4(0.0f, 0.0f, 0.0f, 0.0f), c = w, s = w;
    if (active) {
        w = *reinterpret_cast<const float4*>((part == 0 ? queryNorm : keyNorm) + lane * 4);
        c = *reinterpret_cast<const float4*>(cosines + (i64)position * headDim + lane * 4);
        s = *reinterpret_cast<const float4*>(sines + (i64)position * headDim + lane * 4);
    }
    for (int first = 0; first < heads; first += kHeadsInFlight) {
        uint2 packed[kHeadsInFlight];
        float squares[kHeadsInFlight];
#pragma unroll
        for (int j = 0; j < kHeadsInFlight; ++j) {
            const bool present = active && first + j < heads;
            packed[j] = present ? *reinterpret_cast<const uint2*>(input + (first + j) * headDim + lane * 4) : make_uint2(0, 0);
        }
#pragma unroll
        for (int j = 0; j < kHeadsInFlight; ++j) {
            const float2 low = T::unpack2(packed[j].x), high = T::unpack2(packed[j].y);
            squares[j] = 0.0f;
            squares[j] += low.x * low.x + low.y * low.y + high.x * high.x + high.y * high.y;
            squares[j] = nk_warp_sum(squares[j]);
        }
#pragma unroll
        for (int j = 0; j < kHeadsInFlight; ++j) {
            if (!active || first + j >= heads) continue;
            const float inverseRMS = rsqrtf(squares[j] / (float)headDim + eps);
            const float2 low = T::unpack2(packed[j].x), high = T::unpack2(packed[j].y);
            const float2 a = T::unpack2(T::pack2(low.x * inverseRMS * w.x, low.y * inverseRMS * w.y));
            const float2 b = T::unpack2(T::pack2(high.x * inverseRMS * w.z, high.y * inverseRMS * w.w));
            *reinterpret_cast<uint2*>(output + (first + j) * headDim + lane * 4) =
                make_uint2(T::pack2(a.x * c.x - a.y * s.x, a.y * c.y + a.x * s.y),
                           T::pack2(b.x * c.z - b.y * s.z, b.y * c.w + b.x * s.w));
        }
    }
}

NK_KERNEL void nunchaku_qkv_heads_bf16(const u16* qkv, u16* query, u16* key, u16* value, const float* queryNorm,
                                       const float* keyNorm, const float* cosines, const float* sines, i64 units,
                                       int tokens, int heads, int headDim, int jointTokens, int tokenOffset, float eps) {
    qkv_heads<nk_bf16>(qkv, query, key, value, queryNorm, keyNorm, cosines, sines, units, tokens, heads, headDim,
                       jointTokens, tokenOffset, eps);
}

NK_KERNEL void nunchaku_qkv_heads_f16(const u16* qkv, u16* query, u16* key, u16* value, const float* queryNorm,
                                      const float* keyNorm, const float* cosines, const float* sines, i64 units,
                                      int tokens, int heads, int headDim, int jointTokens, int tokenOffset, float eps) {
    qkv_heads<nk_f16>(qkv, query, key, value, queryNorm, keyNorm, cosines, sines, units, tokens, heads, headDim,
                      jointTokens, tokenOffset, eps);
}
