// w4a4_half.cuh: the two 16-bit activation types (bf16, fp16) as traits for templated kernels.
//
// NVRTC has no cuda_bf16.h / cuda_fp16.h, so the arithmetic of CUDA's half intrinsics is written as PTX here.
// Every operation rounds once to nearest even, exactly like the intrinsic it stands for: `fma2` is `__hfma2`;
// `nk_mul2` (`__hmul2`) and `nk_add2` (`__hadd2`) are fused multiply-adds with an exact second term
// (a·b + (−0), a·1 + b), which is also how cuda_bf16.hpp implements them before sm_90. Values travel as raw bits:
// a `u16` per value, a `u32` per pair (low half = first element).
#pragma once
#include "nunchaku_common.cuh"

/// bfloat16.
struct NKBFloat16 {
    static constexpr bool is_bf16 = true;
    /// The pair (1, 1).
    static constexpr u32 one2 = 0x3F803F80u;

    static NK_DEVICE float to_float(u16 bits) { return nk_bf16_to_float(bits); }
    static NK_DEVICE u16 from_float(float value) { return nk_float_to_bf16(value); }
    static NK_DEVICE u32 pack(float low, float high) { return nk_pack_bf16x2(low, high); }
    static NK_DEVICE float2 unpack(u32 pair) { return nk_unpack_bf16x2(pair); }

    /// a·b + c per element, rounded once.
    static NK_DEVICE u32 fma2(u32 a, u32 b, u32 c) {
        u32 d;
        asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
        return d;
    }
};

/// IEEE binary16.
struct NKFloat16 {
    static constexpr bool is_bf16 = false;
    static constexpr u32 one2 = 0x3C003C00u;

    static NK_DEVICE float to_float(u16 bits) {
        float value;
        asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
        return value;
    }
    static NK_DEVICE u16 from_float(float value) {
        u16 bits;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(value));
        return bits;
    }
    static NK_DEVICE u32 pack(float low, float high) {
        u32 pair;
        asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(pair) : "f"(high), "f"(low));
        return pair;
    }
    static NK_DEVICE float2 unpack(u32 pair) {
        return make_float2(to_float((u16)(pair & 0xFFFFu)), to_float((u16)(pair >> 16)));
    }

    static NK_DEVICE u32 fma2(u32 a, u32 b, u32 c) {
        u32 d;
        asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
        return d;
    }
};

/// a·b per element, rounded once (`__hmul2`).
template <class T> NK_DEVICE u32 nk_mul2(u32 a, u32 b) { return T::fma2(a, b, 0x80008000u); }

/// a + b per element, rounded once (`__hadd2`).
template <class T> NK_DEVICE u32 nk_add2(u32 a, u32 b) { return T::fma2(a, T::one2, b); }

/// The pair (v, v).
NK_DEVICE u32 nk_dup16(u16 v) { return (u32)v | ((u32)v << 16); }

/// The low and high 16 bits of a pair.
NK_DEVICE u16 nk_low16(u32 pair) { return (u16)(pair & 0xFFFFu); }
NK_DEVICE u16 nk_high16(u32 pair) { return (u16)(pair >> 16); }

/// What an output store writes: the value rounded to T; for fp16 clamped to ±65504 with NaN → 65504 (Nunchaku's
/// `EpilogueDefault` clamps with __hmin/__hmax). Clamping before rounding gives the same result as after.
template <class T> NK_DEVICE u16 nk_store_value(float value) {
    if (!T::is_bf16) value = value != value ? 65504.0f : fminf(fmaxf(value, -65504.0f), 65504.0f);
    return T::from_float(value);
}
