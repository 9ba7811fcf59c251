// w4a4_fp8_quantize.cu: the activation pass of the fast (Hopper) W4A4 path: smoothing and per-token float8 e4m3
// quantization of the input, reading it once (docs/hopper.md).
//
// The low-rank branch lives in the expanded weights (w4a4_fp8_weights.cu), so row m of the FP8 GEMM's A operand is
// the smoothed input alone, quantized per row as w4a4_fp8_quantize.cuh says (SHIFTED for layers whose exact mode
// quantizes unsigned, so both modes feed the weights the same smoothed input). The CPU reference
// (`W4A4FastReference.quantize`) does the same operations, so codes and scales are bit-identical. Rows are `depth`
// codes long: K rounded up to a multiple of 128 with zero codes (cuBLASLt's promoted FP8 accumulation is 15% slower
// on a ragged K, research notes in docs/hopper.md). Layers with the same K, shift and smoothing get the same codes,
// so they may share one pass (`CUDAW4A4FastSharedInput`); a LayerNorm feeding a layer may write its codes instead
// (ops_norm.cu).
//
// Grid: one block per row; block: 32…1024 threads (a multiple of 32), each taking 8 consecutive values per step
// (16-byte loads, 8-byte code stores, coalesced across the warp) and keeping its first STEPS steps in registers
// (longer rows re-read the rest); one barrier per block (none with 32 threads). Four variants, chosen per shape by
// `CUDASVDQW4A4FastLinear.quantizeLaunch` from H200 timings (docs/hopper.md, "Session 6: quantize pass"):
// `kept6` / `kept3` also keep the smoothing factors of their steps in registers (read once per row instead of twice)
// and read x around L1 (`ld.global.nc.L1::no_allocate`), for rows up to 3072 values with 64 / 128 threads; `wide`
// (8 steps, x around L1, codes stored evict-first with `st.global.cs`) for longer rows of many tokens; `plain`
// (8 steps, no hints) for longer rows of few tokens, whose x is usually still in L2. All four compute the same fp32
// operations in the same order, so their codes and scales are identical. x [M, K] row-major (bf16/f16),
// inverse_smooth f32 [K], codes u8 [M, depth], scales f32 [M]. K a multiple of 8, depth a multiple of 8 and at
// least K.
#include "w4a4_fp8_quantize.cuh"

/// A 16-byte load of x; `STREAM`: not allocated in L1 (each value is read once).
template <bool STREAM>
NK_DEVICE uint4 w4a4_fp8_load_input(const uint4* address) {
    if (!STREAM) return *address;
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(address));
    return r;
}

/// An 8-byte store of codes; `STREAM`: marked evict-first (`st.global.cs`).
template <bool STREAM>
NK_DEVICE void w4a4_fp8_store_codes(uint2* address, uint2 value) {
    if (STREAM) asm volatile("st.global.cs.v2.u32 [%0], {%1, %2};" ::"l"(address), "r"(value.x), "r"(value.y) : "memory");
    else *address = value;
}

/// One row per block. The first `STEPS` 16-byte loads of each thread stay in registers (the rest of a longer row is
/// read twice); `KEEP`: their smoothing factors too, read once instead of once per use; `LOAD_STREAM` /
/// `STORE_STREAM`: the cache hints of `w4a4_fp8_load_input` / `w4a4_fp8_store_codes`.
template <class T, bool SHIFTED, int STEPS, bool KEEP, bool LOAD_STREAM, bool STORE_STREAM>
NK_DEVICE void w4a4_fp8_quantize(const u16* __restrict__ x, const float* __restrict__ inverse_smooth,
                                 u8* __restrict__ codes, float* __restrict__ scales, int k, int depth) {
    const i64 row = blockIdx.x;
    const uint4* input = reinterpret_cast<const uint4*>(x + row * k);
    const float4* inverse = reinterpret_cast<const float4*>(inverse_smooth);
    const int vectors = k / 8, threads = blockDim.x;

    float factors[KEEP ? STEPS : 1][8];
    if (KEEP) {
#pragma unroll
        for (int j = 0; j < STEPS; j++) {
            const int v = threadIdx.x + j * threads;
            if (v < vectors) w4a4_fp8_factors8(inverse, v, factors[KEEP ? j : 0]);
        }
    }
    uint4 cached[STEPS];
#pragma unroll
    for (int j = 0; j < STEPS; j++) {
        const int v = threadIdx.x + j * threads;
        if (v < vectors) cached[j] = w4a4_fp8_load_input<LOAD_STREAM>(input + v);
    }
    // The smoothed values of cached step j.
    auto smoothed = [&](int j, int v, float t[8]) {
        if (KEEP) w4a4_fp8_smooth8<T, SHIFTED>(cached[j], factors[KEEP ? j : 0], t);
        else w4a4_fp8_smooth8<T, SHIFTED>(cached[j], inverse, v, t);
    };
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < STEPS; j++) {
        const int v = threadIdx.x + j * threads;
        if (v < vectors) {
            float t[8];
            smoothed(j, v, t);
            amax = fmaxf(amax, w4a4_fp8_amax8(t));
        }
    }
    for (int v = threadIdx.x + STEPS * threads; v < vectors; v += threads)
        amax = fmaxf(amax, w4a4_fp8_amax8<T, SHIFTED>(w4a4_fp8_load_input<LOAD_STREAM>(input + v), inverse, v));
    const float factor = w4a4_fp8_row_factor(amax, scales + row);

    u8* row_codes = codes + row * depth;
    uint2* output = reinterpret_cast<uint2*>(row_codes);
#pragma unroll
    for (int j = 0; j < STEPS; j++) {
        const int v = threadIdx.x + j * threads;
        if (v < vectors) {
            float t[8];
            smoothed(j, v, t);
            w4a4_fp8_store_codes<STORE_STREAM>(output + v, w4a4_fp8_codes8(t, factor));
        }
    }
    for (int v = threadIdx.x + STEPS * threads; v < vectors; v += threads)
        w4a4_fp8_store_codes<STORE_STREAM>(output + v, w4a4_fp8_codes8<T, SHIFTED>(w4a4_fp8_load_input<LOAD_STREAM>(input + v), inverse, v, factor));
    w4a4_fp8_pad_codes(row_codes, k, depth);
}

#define W4A4_FP8_QUANTIZE_ARGS                                                                                       \
    const u16* __restrict__ x, const float* __restrict__ inverse_smooth, u8* __restrict__ codes, float* __restrict__ scales, \
        int k, int depth
#define W4A4_FP8_QUANTIZE_PASS x, inverse_smooth, codes, scales, k, depth
// The variants (STEPS, KEEP, LOAD_STREAM, STORE_STREAM), one per shape class (CUDASVDQW4A4FastLinear.quantizeLaunch,
// measured on an H200 in docs/hopper.md).
#define W4A4_FP8_KEPT6 6, true, true, false
#define W4A4_FP8_KEPT3 3, true, true, false
#define W4A4_FP8_WIDE 8, false, true, true
#define W4A4_FP8_PLAIN 8, false, false, false
NK_KERNEL void w4a4_fp8_quantize_bf16_kept6(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, false, W4A4_FP8_KEPT6>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_shifted_kept6(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, true, W4A4_FP8_KEPT6>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_kept6(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, false, W4A4_FP8_KEPT6>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_shifted_kept6(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, true, W4A4_FP8_KEPT6>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_kept3(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, false, W4A4_FP8_KEPT3>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_shifted_kept3(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, true, W4A4_FP8_KEPT3>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_kept3(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, false, W4A4_FP8_KEPT3>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_shifted_kept3(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, true, W4A4_FP8_KEPT3>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_wide(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, false, W4A4_FP8_WIDE>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_shifted_wide(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, true, W4A4_FP8_WIDE>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_wide(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, false, W4A4_FP8_WIDE>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_shifted_wide(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, true, W4A4_FP8_WIDE>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_plain(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, false, W4A4_FP8_PLAIN>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_bf16_shifted_plain(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKBFloat16, true, W4A4_FP8_PLAIN>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_plain(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, false, W4A4_FP8_PLAIN>(W4A4_FP8_QUANTIZE_PASS);
}
NK_KERNEL void w4a4_fp8_quantize_f16_shifted_plain(W4A4_FP8_QUANTIZE_ARGS) {
    w4a4_fp8_quantize<NKFloat16, true, W4A4_FP8_PLAIN>(W4A4_FP8_QUANTIZE_PASS);
}
