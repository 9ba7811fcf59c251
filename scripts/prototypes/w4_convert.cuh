// w4_convert.cuh (prototype): 4-bit weight codes to e4m3 wgmma A fragments in registers, shared by
// w4_register_a_probe.cu and w4_fp8_gemm.cu. A pair of nibbles is masked into the mantissa of 1024 (low nibble) or
// as 16·q (high nibble), the magic subtracted exactly (sub.rn.f16x2), the scale multiplied (mul.rn.f16x2: s, or
// s/16), then cvt.rn.satfinite.e4m3x2.f16x2. Nibble order of a word: see w4_register_a_probe.cu.
#pragma once
#include "prototype_tma.cuh"

#if defined(NK_HAS_WGMMA)

NK_DEVICE u32 sub2(u32 a, u32 b) { u32 d; asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b)); return d; }
NK_DEVICE u32 mul2(u32 a, u32 b) { u32 d; asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b)); return d; }
/// Two e4m3 codes of an f16 pair: the high half in the high byte.
NK_DEVICE u32 e4m3x2(u32 pair) {
    u16 d;
    asm("cvt.rn.satfinite.e4m3x2.f16x2 %0, %1;" : "=h"(d) : "r"(pair));
    return d;
}

/// Four e4m3 weights of one row from `word`'s nibbles (values 0, 2 in the low halves' nibble, 1, 3 in the high
/// halves'); `low`/`high` are the row's (s, s) and (s/16, s/16) pairs.
NK_DEVICE u32 convert4(u32 word, u32 low, u32 high) {
    const u32 a = sub2((word & 0x000F000Fu) | 0x64006400u, 0x64086408u);  // q − 8, exactly
    const u32 b = sub2((word & 0x00F000F0u) | 0x64006400u, 0x64806480u);  // 16 · (q − 8), exactly
    return e4m3x2(mul2(a, low)) | (e4m3x2(mul2(b, high)) << 16);
}

#endif  // NK_HAS_WGMMA
