// w4a4_gemm.cu: the W4A4 GEMM of an SVDQuant linear with its epilogue (research/nunchaku-internals.md §3.4–3.5),
// following the CPU reference (SVDQuant/Linear/W4A4GEMM.swift, SVDQW4A4Linear.multiply):
//   INT4 : per 64-wide group g in order, acc = hfma2(half(psum_g), hmul2(ascale, wscale), acc) with psum_g the
//          exact integer dot product and acc kept in the 16-bit type, like Nunchaku's __hfma2 loop.
//   NVFP4: per 16-wide group, the exact integer dot of doubled E2M1 codes (quarters) times ascale·wscale/4, summed
//          in fp32; times wtscale when it is not 1; rounded to the 16-bit type.
//   then hfma2(y, wcscales, bias) / hmul2 / hadd2 by what the layer has; then, with a low-rank branch,
//   y = half(float(y) + Σ_r half(low_rank[m][r]) · proj_up[n][r]) on fp32-accumulating tensor cores; fp16 stores
//   clamp to ±65504.
// Paths for the integer products (entry-point suffix): `s4` native m16n8k64 4-bit mma.sync (sm_80–89; emulated on
// sm_90), `s8` the same codes widened to int8 for m16n8k32 (sm_90; identical integers), NVFP4 decodes E2M1 codes to
// int8 for m16n8k16 (no GPU here has FP4 tensor cores: sm_120a's are left for later).
//
// Tile: 128 rows × 128 columns per block, 8 warps of 64 × 32 (4 m16 × 4 n8 tiles); operands come straight from
// global memory in fragment order (16-byte loads). Grid: x = N / 128, y = Mpad / 128. Rows ≥ M are not stored.
#include "w4a4_half.cuh"
#include "w4a4_fragments.cuh"

/// How the integer products are computed.
#define W4A4_PATH_S4 0
#define W4A4_PATH_S8 1
#define W4A4_PATH_FP4 2

/// The lane's two words (h = 0, 1) of n8 tile `s` (0, 1) of an n16 weight fragment.
NK_DEVICE void w4a4_weight_words(uint4 fragment, int s, u32& b0, u32& b1) {
    b0 = s == 0 ? fragment.x : fragment.z;
    b1 = s == 0 ? fragment.y : fragment.w;
}

/// The exact integer products of one 64-wide INT4 chunk for one 16×8 tile (c must start at zero).
template <int PATH, bool UNSIGNED>
NK_DEVICE void w4a4_int4_chunk(int (&c)[4], uint4 a, u32 b0, u32 b1) {
    if (PATH == W4A4_PATH_S4) {
        nk_mma_s4<UNSIGNED>(c, a, b0, b1);
    } else {
        // Word h = 0 (a.x row g, a.y row g+8, b0), then h = 1 (a.z, a.w, b1); even nibbles, then odd nibbles.
        nk_mma_s8_k32<UNSIGNED>(c, nk_widen_nibbles<UNSIGNED>(a.x, false), nk_widen_nibbles<UNSIGNED>(a.y, false),
                                nk_widen_nibbles<UNSIGNED>(a.x, true), nk_widen_nibbles<UNSIGNED>(a.y, true),
                                nk_widen_nibbles<false>(b0, false), nk_widen_nibbles<false>(b0, true));
        nk_mma_s8_k32<UNSIGNED>(c, nk_widen_nibbles<UNSIGNED>(a.z, false), nk_widen_nibbles<UNSIGNED>(a.w, false),
                                nk_widen_nibbles<UNSIGNED>(a.z, true), nk_widen_nibbles<UNSIGNED>(a.w, true),
                                nk_widen_nibbles<false>(b1, false), nk_widen_nibbles<false>(b1, true));
    }
}

template <class T, int PATH, bool UNSIGNED>
NK_DEVICE void w4a4_gemm(const uint4* __restrict__ act, const void* __restrict__ ascales, const uint4* __restrict__ wgt,
                         const void* __restrict__ wscales, const u16* __restrict__ wcscales, const u16* __restrict__ bias,
                         const float* __restrict__ low_rank, const u16* __restrict__ up, u16* __restrict__ out,
                         int rows, int n, int k, int rank, int padded_rows, float wtscale) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int chunks = k / 64;
    const int m_tile0 = blockIdx.y * 8 + (warp >> 2) * 4;  // first of the warp's four 16-row tiles
    const int n_tile0 = blockIdx.x * 8 + (warp & 3) * 2;   // first of its two 16-column weight tiles
    const int column0 = n_tile0 * 16;                      // first column of its four n8 tiles

    // INT4: half pairs (row g, row g+8) per tile; NVFP4: fp32 c0..c3 per tile.
    u32 acc[4][4][2];
    float accf[4][4][4];
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
            acc[mt][nt][0] = acc[mt][nt][1] = 0;
            accf[mt][nt][0] = accf[mt][nt][1] = accf[mt][nt][2] = accf[mt][nt][3] = 0.0f;
        }

    for (int c = 0; c < chunks; c++) {
        uint4 a[4], b[2];
#pragma unroll
        for (int mt = 0; mt < 4; mt++) a[mt] = act[((i64)(m_tile0 + mt) * chunks + c) * 32 + lane];
#pragma unroll
        for (int np = 0; np < 2; np++) b[np] = wgt[((i64)(n_tile0 + np) * chunks + c) * 32 + lane];

        if (PATH != W4A4_PATH_FP4) {
            const u16* as = reinterpret_cast<const u16*>(ascales) + (i64)c * padded_rows;
            const u16* ws = reinterpret_cast<const u16*>(wscales) + (i64)c * n;
            u32 wscale[4];
#pragma unroll
            for (int nt = 0; nt < 4; nt++) wscale[nt] = *reinterpret_cast<const u32*>(ws + column0 + nt * 8 + 2 * t);
#pragma unroll
            for (int mt = 0; mt < 4; mt++) {
                const int row = (m_tile0 + mt) * 16 + g;
                const u32 ascale0 = nk_dup16(as[row]), ascale1 = nk_dup16(as[row + 8]);
#pragma unroll
                for (int nt = 0; nt < 4; nt++) {
                    u32 b0, b1;
                    w4a4_weight_words(b[nt >> 1], nt & 1, b0, b1);
                    int p[4] = {0, 0, 0, 0};
                    w4a4_int4_chunk<PATH, UNSIGNED>(p, a[mt], b0, b1);
                    const u32 scale0 = nk_mul2<T>(ascale0, wscale[nt]), scale1 = nk_mul2<T>(ascale1, wscale[nt]);
                    acc[mt][nt][0] = T::fma2(T::pack((float)p[0], (float)p[1]), scale0, acc[mt][nt][0]);
                    acc[mt][nt][1] = T::fma2(T::pack((float)p[2], (float)p[3]), scale1, acc[mt][nt][1]);
                }
            }
        } else {
            const u8* as = reinterpret_cast<const u8*>(ascales);
            const u8* ws = reinterpret_cast<const u8*>(wscales);
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const int group = 4 * c + q, h = q >> 1, e = q & 1;
                float wscale[4][2];
#pragma unroll
                for (int nt = 0; nt < 4; nt++) {
                    const u8* w = ws + (i64)group * n + column0 + nt * 8 + 2 * t;
                    wscale[nt][0] = nk_e4m3_value(w[0]) * 0.25f;
                    wscale[nt][1] = nk_e4m3_value(w[1]) * 0.25f;
                }
#pragma unroll
                for (int mt = 0; mt < 4; mt++) {
                    const int row = (m_tile0 + mt) * 16 + g;
                    const float ascale0 = nk_e4m3_value(as[(i64)group * padded_rows + row]);
                    const float ascale1 = nk_e4m3_value(as[(i64)group * padded_rows + row + 8]);
                    const u32 a0 = nk_e2m1x4_to_s8x4(h == 0 ? a[mt].x : a[mt].z, e);
                    const u32 a1 = nk_e2m1x4_to_s8x4(h == 0 ? a[mt].y : a[mt].w, e);
#pragma unroll
                    for (int nt = 0; nt < 4; nt++) {
                        u32 b0, b1;
                        w4a4_weight_words(b[nt >> 1], nt & 1, b0, b1);
                        int p[4];
                        nk_mma_s8_k16(p, a0, a1, nk_e2m1x4_to_s8x4(h == 0 ? b0 : b1, e));
                        // Each product is exact in fp32: |p| ≤ 2304, scales have 4 significant bits.
                        accf[mt][nt][0] += (float)p[0] * (ascale0 * wscale[nt][0]);
                        accf[mt][nt][1] += (float)p[1] * (ascale0 * wscale[nt][1]);
                        accf[mt][nt][2] += (float)p[2] * (ascale1 * wscale[nt][0]);
                        accf[mt][nt][3] += (float)p[3] * (ascale1 * wscale[nt][1]);
                    }
                }
            }
        }
    }

    // Epilogue: per tile, y pairs for row g and row g + 8 at columns 2t, 2t + 1.
#pragma unroll
    for (int mt = 0; mt < 4; mt++) {
        const int row = (m_tile0 + mt) * 16 + g;
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
            const int column = column0 + nt * 8 + 2 * t;
            u32 y[2];
            if (PATH != W4A4_PATH_FP4) {
                y[0] = acc[mt][nt][0];
                y[1] = acc[mt][nt][1];
            } else {
                float f[4] = {accf[mt][nt][0], accf[mt][nt][1], accf[mt][nt][2], accf[mt][nt][3]};
                if (wtscale != 1.0f) {
#pragma unroll
                    for (int i = 0; i < 4; i++) f[i] *= wtscale;
                }
                y[0] = T::pack(f[0], f[1]);
                y[1] = T::pack(f[2], f[3]);
            }
            if (wcscales != nullptr) {
                const u32 s = *reinterpret_cast<const u32*>(wcscales + column);
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    y[r] = bias != nullptr ? T::fma2(y[r], s, *reinterpret_cast<const u32*>(bias + column)) : nk_mul2<T>(y[r], s);
                }
            } else if (bias != nullptr) {
                const u32 bb = *reinterpret_cast<const u32*>(bias + column);
                y[0] = nk_add2<T>(y[0], bb);
                y[1] = nk_add2<T>(y[1], bb);
            }
            const float2 top = T::unpack(y[0]), bottom = T::unpack(y[1]);
            float f[4] = {top.x, top.y, bottom.x, bottom.y};
            // Low-rank up: A = half(low_rank) rows × ranks, B = proj_up[column][rank] with column = n8 base + g.
            const u16* up_row = up + (i64)(column0 + nt * 8 + g) * rank;
            for (int r0 = 0; r0 < rank; r0 += 16) {
                const float* l0 = low_rank + (i64)row * rank + r0 + 2 * t;
                const float* l1 = l0 + 8 * (i64)rank;
                nk_mma_f32_k16<T>(f, T::pack(l0[0], l0[1]), T::pack(l1[0], l1[1]), T::pack(l0[8], l0[9]), T::pack(l1[8], l1[9]),
                                  *reinterpret_cast<const u32*>(up_row + r0 + 2 * t),
                                  *reinterpret_cast<const u32*>(up_row + r0 + 8 + 2 * t));
            }
            if (row < rows) {
                *reinterpret_cast<u32*>(out + (i64)row * n + column) =
                    (u32)nk_store_value<T>(f[0]) | ((u32)nk_store_value<T>(f[1]) << 16);
            }
            if (row + 8 < rows) {
                *reinterpret_cast<u32*>(out + (i64)(row + 8) * n + column) =
                    (u32)nk_store_value<T>(f[2]) | ((u32)nk_store_value<T>(f[3]) << 16);
            }
        }
    }
}

#define W4A4_GEMM_ARGS                                                                                                 \
    const uint4* __restrict__ act, const void* __restrict__ ascales, const uint4* __restrict__ wgt,                    \
        const void* __restrict__ wscales, const u16* __restrict__ wcscales, const u16* __restrict__ bias,                 \
        const float* __restrict__ low_rank, const u16* __restrict__ up, u16* __restrict__ out, int rows, int n, int k,   \
        int rank, int padded_rows, float wtscale
#define W4A4_GEMM_PASS act, ascales, wgt, wscales, wcscales, bias, low_rank, up, out, rows, n, k, rank, padded_rows, wtscale

NK_KERNEL void w4a4_gemm_bf16_int4_s4(W4A4_GEMM_ARGS) { w4a4_gemm<NKBFloat16, W4A4_PATH_S4, false>(W4A4_GEMM_PASS); }
NK_KERNEL void w4a4_gemm_bf16_int4_s8(W4A4_GEMM_ARGS) { w4a4_gemm<NKBFloat16, W4A4_PATH_S8, false>(W4A4_GEMM_PASS); }
NK_KERNEL void w4a4_gemm_bf16_int4_unsigned_s4(W4A4_GEMM_ARGS) { w4a4_gemm<NKBFloat16, W4A4_PATH_S4, true>(W4A4_GEMM_PASS); }
NK_KERNEL void w4a4_gemm_bf16_int4_unsigned_s8(W4A4_GEMM_ARGS) { w4a4_gemm<NKBFloat16, W4A4_PATH_S8, true>(W4A4_GEMM_PASS); }
NK_KERNEL void w4a4_gemm_bf16_nvfp4(W4A4_GEMM_ARGS) { w4a4_gemm<NKBFloat16, W4A4_PATH_FP4, false>(W4A4_GEMM_PASS); }
NK_KERNEL void w4a4_gemm_f16_int4_s4(W4A4_GEMM_ARGS) { w4a4_gemm<NKFloat16, W4A4_PATH_S4, false>(W4A4_GEMM_PASS); }
NK_KERNEL void w4a4_gemm_f16_int4_s8(W4A4_GEMM_ARGS) { w4a4_gemm<NKFloat16, W4A4_PATH_S8, false>(W4A4_GEMM_PASS); }
NK_KERNEL void w4a4_gemm_f16_int4_unsigned_s4(W4A4_GEMM_ARGS) { w4a4_gemm<NKFloat16, W4A4_PATH_S4, true>(W4A4_GEMM_PASS); }
NK_KERNEL void w4a4_gemm_f16_int4_unsigned_s8(W4A4_GEMM_ARGS) { w4a4_gemm<NKFloat16, W4A4_PATH_S8, true>(W4A4_GEMM_PASS); }
NK_KERNEL void w4a4_gemm_f16_nvfp4(W4A4_GEMM_ARGS) { w4a4_gemm<NKFloat16, W4A4_PATH_FP4, false>(W4A4_GEMM_PASS); }
