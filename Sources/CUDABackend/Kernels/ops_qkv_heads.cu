// ops_qkv_heads.cu: the attention heads of one token stream from its fused q ‖ k ‖ v projection, in one pass:
// per-head RMSNorm of q and k (float32 weight), rounded to the activation format as ops_norm.cu's rmsnorm stores
// it, then RoPE on adjacent pairs as ops_rotary.cu computes it; v copied. Each head is written into joint
// [B, J, H, D] buffers at a token offset (FLUX: the text stream at 0, the image stream after it), which replaces a
// block's split, RMSNorm, RoPE and concat passes.
//
// qkv is [B, S, 3, H, D] (the projection's [B, S, 3·H·D]); cos and sin are float32 [J, D] tables of the joint
// sequence. One warp per input row of D elements, four per lane and step; D must be a multiple of 4.
#include "ops_common.cuh"

template <class T>
NK_DEVICE void qkv_heads(const u16* __restrict__ qkv, u16* __restrict__ query, u16* __restrict__ key,
                         u16* __restrict__ value, const float* __restrict__ queryNorm, const float* __restrict__ keyNorm,
                         const float* __restrict__ cosines, const float* __restrict__ sines, i64 rows, int tokens,
                         int heads, int headDim, int jointTokens, int tokenOffset, float eps) {
    const int lane = threadIdx.x & 31;
    // row = ((sample · tokens + token) · 3 + part) · heads + head: the input's order, so a warp reads one run.
    const i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;  // whole warps leave together; no block-wide barrier follows
    const int head = (int)(row % heads);
    const int part = (int)((row / heads) % 3);
    const i64 streamToken = row / (3 * (i64)heads);
    const i64 sample = streamToken / tokens;
    const int position = (int)(streamToken % tokens) + tokenOffset;
    const u16* input = qkv + row * headDim;
    u16* output = (part == 0 ? query : part == 1 ? key : value) + ((sample * jointTokens + position) * heads + head) * headDim;
    const int quads = headDim / 4;
    if (part == 2) {
        for (int quad = lane; quad < quads; quad += 32)
            *reinterpret_cast<uint2*>(output + quad * 4) = *reinterpret_cast<const uint2*>(input + quad * 4);
        return;
    }
    const float* weight = part == 0 ? queryNorm : keyNorm;
    float squares = 0.0f;
    for (int quad = lane; quad < quads; quad += 32) {
        const uint2 packed = *reinterpret_cast<const uint2*>(input + quad * 4);
        const float2 low = T::unpack2(packed.x), high = T::unpack2(packed.y);
        squares += low.x * low.x + low.y * low.y + high.x * high.x + high.y * high.y;
    }
    const float inverseRMS = rsqrtf(nk_warp_sum(squares) / (float)headDim + eps);
    const float* cosRow = cosines + (i64)position * headDim;
    const float* sinRow = sines + (i64)position * headDim;
    for (int quad = lane; quad < quads; quad += 32) {
        const uint2 packed = *reinterpret_cast<const uint2*>(input + quad * 4);
        const float2 low = T::unpack2(packed.x), high = T::unpack2(packed.y);
        const float4 w = *reinterpret_cast<const float4*>(weight + quad * 4);
        const float2 a = T::unpack2(T::pack2(low.x * inverseRMS * w.x, low.y * inverseRMS * w.y));
        const float2 b = T::unpack2(T::pack2(high.x * inverseRMS * w.z, high.y * inverseRMS * w.w));
        const float4 c = *reinterpret_cast<const float4*>(cosRow + quad * 4);
        const float4 s = *reinterpret_cast<const float4*>(sinRow + quad * 4);
        *reinterpret_cast<uint2*>(output + quad * 4) =
            make_uint2(T::pack2(a.x * c.x - a.y * s.x, a.y * c.y + a.x * s.y),
                       T::pack2(b.x * c.z - b.y * s.z, b.y * c.w + b.x * s.w));
    }
}

NK_KERNEL void nunchaku_qkv_heads_bf16(const u16* qkv, u16* query, u16* key, u16* value, const float* queryNorm,
                                       const float* keyNorm, const float* cosines, const float* sines, i64 rows,
                                       int tokens, int heads, int headDim, int jointTokens, int tokenOffset, float eps) {
    qkv_heads<nk_bf16>(qkv, query, key, value, queryNorm, keyNorm, cosines, sines, rows, tokens, heads, headDim,
                       jointTokens, tokenOffset, eps);
}

NK_KERNEL void nunchaku_qkv_heads_f16(const u16* qkv, u16* query, u16* key, u16* value, const float* queryNorm,
                                      const float* keyNorm, const float* cosines, const float* sines, i64 rows,
                                      int tokens, int heads, int headDim, int jointTokens, int tokenOffset, float eps) {
    qkv_heads<nk_f16>(qkv, query, key, value, queryNorm, keyNorm, cosines, sines, rows, tokens, heads, headDim,
                      jointTokens, tokenOffset, eps);
}
