// ops_rotary.cu: rotary position embedding on adjacent pairs (FLUX, diffusers' apply_rotary_emb with
// use_real_unbind_dim=-1): out[2k] = x[2k]·cos[2k] − x[2k+1]·sin[2k], out[2k+1] = x[2k+1]·cos[2k+1] + x[2k]·sin[2k+1].
//
// x and out are [B, S, H, D] (16-bit, may be the same buffer); cos and sin are float32 [S, D] tables computed on the
// CPU from float64 angles (RotaryTable). Eight elements (four pairs) per step; the launcher checks D % 8 == 0.
#include "ops_common.cuh"

template <class T>
NK_DEVICE void rotary(const u16* x, u16* out, const float* __restrict__ cosines, const float* __restrict__ sines,
                      i64 groups, int tokens, int heads, int headDim) {
    const int groupsPerHead = headDim / 8;
    for (i64 group = nk_global_thread_index(); group < groups; group += nk_grid_thread_count()) {
        const int column = (int)(group % groupsPerHead) * 8;
        const i64 token = (group / ((i64)groupsPerHead * heads)) % tokens;
        float values[8], c[8], s[8], rotated[8];
        nk_load8<T>(x + group * 8, values);
        nk_load8_f32(cosines + token * headDim + column, c);
        nk_load8_f32(sines + token * headDim + column, s);
#pragma unroll
        for (int pair = 0; pair < 8; pair += 2) {
            rotated[pair] = values[pair] * c[pair] - values[pair + 1] * s[pair];
            rotated[pair + 1] = values[pair + 1] * c[pair + 1] + values[pair] * s[pair + 1];
        }
        nk_store8<T>(out + group * 8, rotated);
    }
}

NK_KERNEL void nunchaku_rotary_bf16(const u16* x, u16* out, const float* cosines, const float* sines, i64 groups,
                                    int tokens, int heads, int headDim) {
    rotary<nk_bf16>(x, out, cosines, sines, groups, tokens, heads, headDim);
}

NK_KERNEL void nunchaku_rotary_f16(const u16* x, u16* out, const float* cosines, const float* sines, i64 groups,
                                   int tokens, int heads, int headDim) {
    rotary<nk_f16>(x, out, cosines, sines, groups, tokens, heads, headDim);
}
