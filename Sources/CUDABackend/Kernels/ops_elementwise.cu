// ops_elementwise.cu: GELU (tanh approximation), SiLU and the gated residual add, in float32 arithmetic on 16-bit
// activations (bf16 or f16), rounded once on store.
//
// GELU and SiLU take any element count: groups of eight through 16-byte accesses, then a scalar tail. The gated
// add works on [rows, width] with width % 8 == 0 and may write in place (out == residual).
#include "ops_common.cuh"

namespace {

/// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
NK_DEVICE float gelu_tanh(float x) {
    const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}

/// x / (1 + e^(−x)).
NK_DEVICE float silu(float x) { return x / (1.0f + expf(-x)); }

template <class T, float (*Function)(float)>
NK_DEVICE void map(const u16* x, u16* y, i64 count) {
    const i64 groups = count / 8;
    for (i64 group = nk_global_thread_index(); group < groups; group += nk_grid_thread_count()) {
        float values[8];
        nk_load8<T>(x + group * 8, values);
#pragma unroll
        for (int i = 0; i < 8; ++i) values[i] = Function(values[i]);
        nk_store8<T>(y + group * 8, values);
    }
    for (i64 index = groups * 8 + nk_global_thread_index(); index < count; index += nk_grid_thread_count()) {
        y[index] = T::from_float(Function(T::to_float(x[index])));
    }
}

/// out = residual + gate·update with `gate = gate[(row / tokensPerSample)·gateStride + i]` (a chunk of an adaLN
/// modulation table, so the stride may exceed the width).
template <class T>
NK_DEVICE void gated_add(const u16* residual, const u16* __restrict__ update, u16* out, const u16* __restrict__ gate,
                         i64 gateStride, i64 rows, int width, int tokensPerSample) {
    const i64 chunksPerRow = width / 8;
    const i64 chunks = rows * chunksPerRow;
    for (i64 chunk = nk_global_thread_index(); chunk < chunks; chunk += nk_grid_thread_count()) {
        const i64 row = chunk / chunksPerRow;
        const i64 column = (chunk % chunksPerRow) * 8;
        float base[8], delta[8], factor[8];
        nk_load8<T>(residual + row * width + column, base);
        nk_load8<T>(update + row * width + column, delta);
        nk_load8<T>(gate + (row / tokensPerSample) * gateStride + column, factor);
#pragma unroll
        for (int i = 0; i < 8; ++i) base[i] += factor[i] * delta[i];
        nk_store8<T>(out + row * width + column, base);
    }
}

}  // namespace

NK_KERNEL void nunchaku_gelu_tanh_bf16(const u16* x, u16* y, i64 count) { map<nk_bf16, gelu_tanh>(x, y, count); }

NK_KERNEL void nunchaku_gelu_tanh_f16(const u16* x, u16* y, i64 count) { map<nk_f16, gelu_tanh>(x, y, count); }

NK_KERNEL void nunchaku_silu_bf16(const u16* x, u16* y, i64 count) { map<nk_bf16, silu>(x, y, count); }

NK_KERNEL void nunchaku_silu_f16(const u16* x, u16* y, i64 count) { map<nk_f16, silu>(x, y, count); }

NK_KERNEL void nunchaku_gated_add_bf16(const u16* residual, const u16* update, u16* out, const u16* gate,
                                         i64 gateStride, i64 rows, int width, int tokensPerSample) {
    gated_add<nk_bf16>(residual, update, out, gate, gateStride, rows, width, tokensPerSample);
}

NK_KERNEL void nunchaku_gated_add_f16(const u16* residual, const u16* update, u16* out, const u16* gate,
                                        i64 gateStride, i64 rows, int width, int tokensPerSample) {
    gated_add<nk_f16>(residual, update, out, gate, gateStride, rows, width, tokensPerSample);
}
