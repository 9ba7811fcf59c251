// w4a4_fragments.cuh: tensor-core instructions and 4-bit code conversions for the W4A4 kernels.
//
// The fragment convention (docs/kernels-w4a4.md, Layouts/W4A4FragmentLayout.swift). For each 64-wide K chunk, a lane
// (g = lane / 4, t = lane % 4) owns per row two 32-bit words h = 0, 1 of eight 4-bit codes; nibble i (bits 4i..4i+3)
// of word h holds input k of the chunk:
//   INT4  : k = 32h + 8t + i                      (the s4 m16n8k64 fragment: one instruction per chunk)
//   NVFP4 : k = 32h + 16(i / 4) + 4t + (i % 4)    (four s8 m16n8k16 instructions, one per 16-wide group)
// Activations: words (h0, row g), (h0, row g+8), (h1, row g), (h1, row g+8) = the A registers a0..a3.
// Weights: per n16 tile, words (n8 half s, h) at 2s + h, for weight row 8s + g = the B registers of two n8 tiles.
// A tensor-core product sums over k, so any k order works as long as A and B use the same one: this is what makes
// the int8 widening below (even nibbles, then odd nibbles) give the same integers as the 4-bit instruction.
#pragma once
#include "nunchaku_common.cuh"

// MARK: integer products

/// c += A·B with A 16×64 4-bit (unsigned when UNSIGNED_A) and B 64×8 signed 4-bit: `mma.sync` m16n8k64.
template <bool UNSIGNED_A>
NK_DEVICE void nk_mma_s4(int (&c)[4], uint4 a, u32 b0, u32 b1) {
    if (UNSIGNED_A) {
        asm volatile("mma.sync.aligned.m16n8k64.row.col.s32.u4.s4.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                     : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
    } else {
        asm volatile("mma.sync.aligned.m16n8k64.row.col.s32.s4.s4.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                     : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
    }
}

/// c += A·B with A 16×32 8-bit (unsigned when UNSIGNED_A) and B 32×8 signed 8-bit: `mma.sync` m16n8k32.
template <bool UNSIGNED_A>
NK_DEVICE void nk_mma_s8_k32(int (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    if (UNSIGNED_A) {
        asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    } else {
        asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    }
}

/// c = A·B with A 16×16 and B 16×8 signed 8-bit: `mma.sync` m16n8k16 (one NVFP4 group).
NK_DEVICE void nk_mma_s8_k16(int (&c)[4], u32 a0, u32 a1, u32 b0) {
    c[0] = c[1] = c[2] = c[3] = 0;
    asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a0), "r"(a1), "r"(b0));
}

/// c += A·B with 16-bit float A (16×16) and B (16×8) of type T, fp32 accumulation: `mma.sync` m16n8k16.
template <class T>
NK_DEVICE void nk_mma_f32_k16(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    if (T::is_bf16) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    } else {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    }
}

// MARK: widening 4-bit codes to bytes

/// Nibbles 0, 2, 4, 6 (EVEN) or 1, 3, 5, 7 of `word` as four bytes, sign-extended unless UNSIGNED.
template <bool UNSIGNED>
NK_DEVICE u32 nk_widen_nibbles(u32 word, bool odd) {
    const u32 bytes = (odd ? word >> 4 : word) & 0x0F0F0F0Fu;
    if (UNSIGNED) return bytes;
    return bytes | ((bytes & 0x08080808u) * 0x1Eu);  // 0x08 · 0x1E = 0xF0: sets the high nibble of negative bytes
}

/// Four E2M1 codes (nibbles 4e..4e+3 of `word`) as four signed bytes holding twice their value
/// (0, ±1, ±2, ±3, ±4, ±6, ±8, ±12), so a byte product counts quarters exactly.
NK_DEVICE u32 nk_e2m1x4_to_s8x4(u32 word, int e) {
    u32 result = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const u32 code = (word >> (16 * e + 4 * i)) & 0xFu;
        const u32 magnitude = (u32)((0x0C08060403020100ull >> (8 * (code & 7u))) & 0xFFu);
        const u32 byte = (code & 8u) ? ((0u - magnitude) & 0xFFu) : magnitude;
        result |= byte << (8 * i);
    }
    return result;
}

// MARK: quantization helpers (the CPU reference's rounding, ActivationQuantizer.swift)

/// `rcp.approx.ftz` as the CPU reference emulates it: a correctly rounded reciprocal, infinity for zero or
/// subnormal inputs, subnormal results flushed to zero.
NK_DEVICE float nk_reciprocal_ftz(float value) {
    const float smallest_normal = 1.17549435e-38f;
    if (fabsf(value) < smallest_normal) return copysignf(__int_as_float(0x7F800000), value);
    const float reciprocal = __frcp_rn(value);
    return fabsf(reciprocal) < smallest_normal ? copysignf(0.0f, reciprocal) : reciprocal;
}

/// The signed (−8…7) or unsigned (0…15) INT4 code of an already scaled value: round half to even (NaN → 0,
/// `cvt.rni.s32.f32`), then saturate (`cvt.pack.sat.s4/u4`). Returns the nibble.
template <bool UNSIGNED>
NK_DEVICE u32 nk_int4_code(float scaled) {
    int q = __float2int_rn(scaled);
    q = UNSIGNED ? min(max(q, 0), 15) : min(max(q, -8), 7);
    return (u32)q & 0xFu;
}

/// The E2M1 code of `value`: nearest of 0, 0.5, 1, 1.5, 2, 3, 4, 6 (ties to even), saturating at 6, sign bit 8 taken
/// from the value (−0 for small negatives); NaN → 0.
NK_DEVICE u32 nk_e2m1_code(float value) {
    if (value != value) return 0;
    const u32 sign = (__float_as_uint(value) >> 31) << 3;
    const float magnitude = fabsf(value);
    const float quantum = magnitude < 2.0f ? 0.5f : (magnitude < 4.0f ? 1.0f : 2.0f);
    const float rounded = fminf(rintf(magnitude / quantum) * quantum, 6.0f);
    const u32 index = rounded < 2.0f ? (u32)(rounded * 2.0f) : (rounded < 4.0f ? (u32)rounded + 2u : (u32)(rounded * 0.5f) + 4u);
    return sign | index;
}

/// The float8 e4m3fn code of a non-negative value (nearest, ties to even), saturating at 448.
NK_DEVICE u32 nk_e4m3_code_nonnegative(float value) {
    if (!(value > 0.0f)) return 0;
    const int exponent = max((int)((__float_as_uint(value) >> 23) & 0xFFu) - 127, -6);
    const float quantum = __int_as_float((exponent - 3 + 127) << 23);
    const float rounded = fminf(rintf(value / quantum) * quantum, 448.0f);
    if (rounded == 0.0f) return 0;
    const int roundedExponent = (int)((__float_as_uint(rounded) >> 23) & 0xFFu) - 127;
    if (roundedExponent < -6) return (u32)(rounded * 512.0f);  // subnormal: multiples of 2^-9
    const u32 mantissa = (__float_as_uint(rounded) >> 20) & 7u;
    return ((u32)(roundedExponent + 7) << 3) | mantissa;
}

/// The value of a non-negative float8 e4m3fn code (NaN codes are rejected before the kernels run).
NK_DEVICE float nk_e4m3_value(u32 code) {
    const u32 exponent = (code >> 3) & 0xFu, mantissa = code & 7u;
    if (exponent == 0) return (float)mantissa * (1.0f / 512.0f);
    return __uint_as_float(((exponent + 120u) << 23) | (mantissa << 20));
}
