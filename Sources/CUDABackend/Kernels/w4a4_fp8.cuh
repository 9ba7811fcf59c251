// w4a4_fp8.cuh: float8 e4m3fn helpers of the fast (Hopper) W4A4 path. Rounding: nearest, ties to even, saturating
// at ±448. On sm_89+ the hardware conversion `cvt.rn.satfinite.e4m3x2.f32` does it (NaN → 0x7F); older targets,
// which never run the fast path but are compile-checked, get the same rounding in software (NaN → 0).
#pragma once
#include "w4a4_fragments.cuh"

/// The largest finite float8 e4m3fn value: per-token activation scales map a row's amax onto it.
#define W4A4_FP8_MAX 448.0f

/// Two values as float8 e4m3fn codes, `low` in the low byte.
NK_DEVICE u32 nk_e4m3x2(float low, float high) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    u16 pair;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(high), "f"(low));
    return pair;
#else
    const u32 a = nk_e4m3_code_nonnegative(fabsf(low)), b = nk_e4m3_code_nonnegative(fabsf(high));
    return (low < 0.0f ? a | 0x80u : a) | ((high < 0.0f ? b | 0x80u : b) << 8);
#endif
}

/// Four values as codes in one little-endian word (first value in the low byte).
NK_DEVICE u32 nk_e4m3_pack4(float a, float b, float c, float d) { return nk_e4m3x2(a, b) | (nk_e4m3x2(c, d) << 16); }
