// awq_gemv.cu: the AWQ W4A16 linear of the adaLN modulation layers (research/nunchaku-internals.md §1.3, §3.9),
// following the CPU reference (SVDQuant/Linear/AWQW4A16Linear.swift): each weight dequantized in the 16-bit type as
// hfma(code, scale, zero), each product hmul(w, x) rounded to the 16-bit type, the products summed in fp32 (here
// per lane, then a warp reduction: a different order than the CPU's), the sum rounded, then hadd(y, bias).
//
// One warp per output channel, lanes striding over K in runs of 32 codes (16 bytes; one group of 64 holds two runs);
// each warp serves up to 8 rows, grid y covers the rows in blocks of 8. Grid: x = ceil(N / 8), y = ceil(M / 8);
// block: 8 warps.
//
// Layouts (Layouts/AWQDeviceLayout.swift): x [M, K]; codes u8 [N, K/2], unsigned, low nibble = even k (the canonical
// layout); scales and zeros transposed to [N, K/64]; bias [N] or null. Output: `chunks` = 0 writes [M, N] in natural
// channel order; `chunks` = S > 0 writes [S, M, N/S] (chunk s of the modulation is then one contiguous [M, N/S]
// tensor: the interleaved output split of Nunchaku's adaLN layers, done by the store).
#include "w4a4_half.cuh"

#define AWQ_ROWS_PER_WARP 8

template <class T>
NK_DEVICE void awq_gemv(const u16* __restrict__ x, const u8* __restrict__ codes, const u16* __restrict__ scales,
                        const u16* __restrict__ zeros, const u16* __restrict__ bias, u16* __restrict__ out, int rows,
                        int n, int k, int chunks) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int channel = blockIdx.x * 8 + warp;
    if (channel >= n) return;
    const int row0 = blockIdx.y * AWQ_ROWS_PER_WARP;
    const int groups = k / 64;

    float sum[AWQ_ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < AWQ_ROWS_PER_WARP; r++) sum[r] = 0.0f;

    for (int k0 = lane * 32; k0 < k; k0 += 32 * 32) {
        const uint4 packed = *reinterpret_cast<const uint4*>(codes + (i64)channel * (k / 2) + k0 / 2);
        const i64 group = (i64)channel * groups + k0 / 64;
        const u32 scale = nk_dup16(scales[group]), zero = nk_dup16(zeros[group]);
        // w[p] = the pair (k0 + 2p, k0 + 2p + 1).
        u32 w[16];
#pragma unroll
        for (int p = 0; p < 16; p++) {
            const u32 word = p < 4 ? packed.x : (p < 8 ? packed.y : (p < 12 ? packed.z : packed.w));
            const u32 byte = (word >> (8 * (p & 3))) & 0xFFu;
            w[p] = T::fma2(T::pack((float)(byte & 0xFu), (float)(byte >> 4)), scale, zero);
        }
#pragma unroll
        for (int r = 0; r < AWQ_ROWS_PER_WARP; r++) {
            if (row0 + r < rows) {
                const uint4* xr = reinterpret_cast<const uint4*>(x + (i64)(row0 + r) * k + k0);
#pragma unroll
                for (int v = 0; v < 4; v++) {
                    const uint4 xv = xr[v];
                    const u32 xs[4] = {xv.x, xv.y, xv.z, xv.w};
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        const float2 product = T::unpack(nk_mul2<T>(w[4 * v + j], xs[j]));
                        sum[r] += product.x;
                        sum[r] += product.y;
                    }
                }
            }
        }
    }

#pragma unroll
    for (int r = 0; r < AWQ_ROWS_PER_WARP; r++) {
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) sum[r] += __shfl_xor_sync(0xFFFFFFFFu, sum[r], offset);
    }
    if (lane != 0) return;
#pragma unroll
    for (int r = 0; r < AWQ_ROWS_PER_WARP; r++) {
        const int row = row0 + r;
        if (row >= rows) continue;
        u16 y = T::from_float(sum[r]);
        if (bias != nullptr) y = nk_low16(nk_add2<T>(y, bias[channel]));
        i64 index;
        if (chunks > 0) {
            const int width = n / chunks;
            index = ((i64)(channel / width) * rows + row) * width + channel % width;
        } else {
            index = (i64)row * n + channel;
        }
        out[index] = y;
    }
}

#define AWQ_GEMV_ARGS                                                                                                \
    const u16* __restrict__ x, const u8* __restrict__ codes, const u16* __restrict__ scales, const u16* __restrict__ zeros, \
        const u16* __restrict__ bias, u16* __restrict__ out, int rows, int n, int k, int chunks
#define AWQ_GEMV_PASS x, codes, scales, zeros, bias, out, rows, n, k, chunks

NK_KERNEL void awq_gemv_bf16(AWQ_GEMV_ARGS) { awq_gemv<NKBFloat16>(AWQ_GEMV_PASS); }
NK_KERNEL void awq_gemv_f16(AWQ_GEMV_ARGS) { awq_gemv<NKFloat16>(AWQ_GEMV_PASS); }
