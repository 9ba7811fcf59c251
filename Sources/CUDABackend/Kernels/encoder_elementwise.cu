// encoder_elementwise.cu: the elementwise steps of the text encoders and the VAE decoder that the transformer ops
// do not have, on bf16 in float32 arithmetic, each rounded where the CPU reference rounds:
// - add: out = a + b (residual connections; out may be a),
// - quick_gelu: x·sigmoid(1.702·x) (CLIP's MLP; in place allowed),
// - gated_gelu: T5 v1.1's gated feed-forward on the fused [rows, 2F] output of wi_0 ‖ wi_1:
//   out[r, i] = round(round(gelu_tanh(g))·u) with g = in[r, i], u = in[r, F + i] (the CPU rounds the GELU output
//   and the product separately).
#include "ops_common.cuh"

namespace {

/// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
NK_DEVICE float gelu_tanh(float x) {
    const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}

/// bf16 rounding of a float, returned as a float.
NK_DEVICE float round_bf16(float x) { return nk_bf16_to_float(nk_float_to_bf16(x)); }

}  // namespace

NK_KERNEL void nunchaku_encoder_add_bf16(const u16* a, const u16* b, u16* out, i64 count) {
    const i64 groups = count / 8;
    for (i64 group = nk_global_thread_index(); group < groups; group += nk_grid_thread_count()) {
        float left[8], right[8];
        nk_load8<nk_bf16>(a + group * 8, left);
        nk_load8<nk_bf16>(b + group * 8, right);
#pragma unroll
        for (int i = 0; i < 8; ++i) left[i] += right[i];
        nk_store8<nk_bf16>(out + group * 8, left);
    }
    for (i64 index = groups * 8 + nk_global_thread_index(); index < count; index += nk_grid_thread_count()) {
        out[index] = nk_float_to_bf16(nk_bf16_to_float(a[index]) + nk_bf16_to_float(b[index]));
    }
}

NK_KERNEL void nunchaku_encoder_quick_gelu_bf16(const u16* x, u16* out, i64 count) {
    for (i64 index = nk_global_thread_index(); index < count; index += nk_grid_thread_count()) {
        const float value = nk_bf16_to_float(x[index]);
        out[index] = nk_float_to_bf16(value / (1.0f + expf(-1.702f * value)));
    }
}

NK_KERNEL void nunchaku_encoder_gated_gelu_bf16(const u16* fused, u16* out, i64 rows, int features) {
    const i64 count = rows * features;
    for (i64 index = nk_global_thread_index(); index < count; index += nk_grid_thread_count()) {
        const i64 row = index / features;
        const int column = (int)(index % features);
        const u16* source = fused + row * 2 * features;
        const float gate = round_bf16(gelu_tanh(nk_bf16_to_float(source[column])));
        out[index] = nk_float_to_bf16(gate * nk_bf16_to_float(source[features + column]));
    }
}
