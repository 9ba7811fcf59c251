// w4a4_fp8_weights.cu: the weight side of the fast (Hopper) W4A4 path: a layer's 4-bit codes (kept 4-bit in memory)
// and its low-rank branch expanded into one float8 e4m3 scratch, relative to a per-channel unit; the GEMM applies
// the unit in its epilogue (docs/hopper.md). The layer's dense equivalent in the smoothed input space is
//   W'[n, k] = (v(q[n, k]) · s[n, k/G]) · f[n] + Σ_r up[n, r] · down[k, r]
// with v the code's value (INT4: q in -8..7; NVFP4: twice the E2M1 value, an integer up to ±12), s the group scale
// (INT4 16-bit, groups of 64; NVFP4 e4m3 micro-scales, groups of 16), f[n] the row factor (wtscale · wcscales[n];
// NVFP4 also 0.5), up = proj_up [N, R] and down = smooth ⊙ proj_down [K, R] (made at upload, in the activation
// dtype). The scratch holds w8[n, k] = e4m3(fma(v, s · f[n], L[n, k]) · inverse_unit[n]), the low-rank sum L
// in fp32 on the tensor cores (mma.sync m16n8k16), columns K..depth zero. inverse_unit[n] = 1/u[n] with u[n] an upper
// bound of max_k |W'[n, k]| / 448 made at upload (0 for an all-zero row), so |w8| ≤ 448 up to rounding
// (saturating). The CPU reference (`W4A4FastReference.foldedWeights`) does the same fp32 operations but adds L in
// its own order: a code may differ from it by one e4m3 step where the two sums round apart.
//
// Grid: one block of 128 threads per 64 rows × 128 columns of the scratch (x: columns, depth / 128; y: rows).
// The block copies its tiles into shared memory with cp.async (down's 128 rows and up's 64 rows, 2R + 16 bytes
// apart; the 64 bytes of canonical qweight [N, K/2] of each row, low nibble first; rows past N and columns past K
// zero-filled) while each lane loads its rows' factors and group scales; warp w takes rows 16w..16w+15 and all
// 128 columns as 16 n-tiles of mma.sync accumulators (ldmatrix fragments), then each lane turns its two rows'
// accumulators into codes, staged in shared memory and stored as 16-byte rows. Dynamic shared memory:
// 192 · (2R + 16) + 64 · (80 + 144) bytes (`CUDASVDQW4A4FastLinear.expansionSharedBytes`). Scales are [N, K/G]
// (transposed at upload). K a multiple of 16 (INT4: 64), R a multiple of 16, depth a multiple of 128 at least K.
#include "w4a4_half.cuh"
#include "w4a4_fp8.cuh"
#include "ops_mma.cuh"

#define W4A4_FP8_EXPAND_COLUMNS 128
// Shared-memory row strides in bytes, each 16 bytes past a multiple of 32 words' worth so that the eight rows one
// ldmatrix or one warp-wide 16-byte load touches fall in distinct banks: the codes tile (64 bytes a row) and the
// staged output (128 bytes a row); the low-rank tiles take 2R + 16.
#define W4A4_FP8_CODES_STRIDE 80
#define W4A4_FP8_STAGED_STRIDE 144

/// Starts copying the first `bytes` (0…16) of 16 bytes from global to shared memory, zero-filling the rest.
NK_DEVICE void w4a4_fp8_copy_async(void* destination, const void* source, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                 :: "r"(nk_shared_address(destination)), "l"(source), "r"(bytes) : "memory");
}

/// The value of a 4-bit code: INT4 signed, NVFP4 twice the E2M1 value (code 8, −0, becomes +0 as in the reference).
template <bool NVFP4>
NK_DEVICE float w4a4_fp8_code_value(u32 code) {
    if (!NVFP4) return (float)((int)(code << 28) >> 28);
    const int magnitude = (int)((0x0C08060403020100ull >> (8 * (code & 7u))) & 0xFFu);
    return (float)((code & 8u) ? -magnitude : magnitude);
}

template <class T, bool NVFP4, int WARPS, int PASS>
NK_DEVICE void w4a4_fp8_expand(const u8* __restrict__ qweight, const void* __restrict__ scales,
                               const float* __restrict__ row_factors, const float* __restrict__ inverse_units,
                               const u16* __restrict__ proj_up, const u16* __restrict__ down, u8* __restrict__ out,
                               int n, int k, int rank, int depth) {
    extern __shared__ __align__(16) u8 w4a4_fp8_expand_shared[];
    constexpr int G = NVFP4 ? 16 : 64, SCALES = W4A4_FP8_EXPAND_COLUMNS / G, ROWS = 16 * WARPS, THREADS = 32 * WARPS;
    const int low_rank_stride = 2 * rank + 16;
    u8* down_tile = w4a4_fp8_expand_shared;                                      // [128 columns][R]
    u8* up_tile = down_tile + W4A4_FP8_EXPAND_COLUMNS * low_rank_stride;         // [ROWS][R]
    u8* codes_tile = up_tile + ROWS * low_rank_stride;                           // [ROWS][64 bytes]
    u8* staged = codes_tile + ROWS * W4A4_FP8_CODES_STRIDE;                      // [ROWS][128 codes]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int first_row = blockIdx.y * ROWS, first_column = blockIdx.x * W4A4_FP8_EXPAND_COLUMNS;

    // 1. Every tile into shared memory (rows past N, columns past K zero-filled).
    {
        const int chunks = rank / 8;   // 16-byte chunks per low-rank row
        for (int i = threadIdx.x; i < W4A4_FP8_EXPAND_COLUMNS * chunks; i += THREADS) {
            const int column = first_column + i / chunks;
            w4a4_fp8_copy_async(down_tile + (i / chunks) * low_rank_stride + (i % chunks) * 16,
                                down + (i64)min(column, k - 1) * rank + (i % chunks) * 8, column < k ? 16 : 0);
        }
        for (int i = threadIdx.x; i < ROWS * chunks; i += THREADS) {
            const int row = first_row + i / chunks;
            w4a4_fp8_copy_async(up_tile + (i / chunks) * low_rank_stride + (i % chunks) * 16,
                                proj_up + (i64)min(row, n - 1) * rank + (i % chunks) * 8, row < n ? 16 : 0);
        }
        const int code_bytes = max(0, min(W4A4_FP8_EXPAND_COLUMNS, k - first_column)) / 2;
        for (int i = threadIdx.x; i < ROWS * 4; i += THREADS) {
            const int row = first_row + i / 4, offset = (i % 4) * 16;
            const int bytes = row < n ? max(0, min(16, code_bytes - offset)) : 0;
            w4a4_fp8_copy_async(codes_tile + (i / 4) * W4A4_FP8_CODES_STRIDE + offset,
                                qweight + (i64)min(row, n - 1) * (k / 2) + (bytes > 0 ? first_column / 2 + offset : 0), bytes);
        }
        nk_cp_async_commit();
    }

    // 2. Meanwhile each lane's rows (local g and g + 8 of the warp's 16): row factor, inverse unit, group scales.
    int local_rows[2], rows[2];
    float scale_factors[2][SCALES], inverse[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        local_rows[h] = warp * 16 + g + 8 * h;
        rows[h] = min(first_row + local_rows[h], n - 1);
        const float factor = row_factors[rows[h]];
        inverse[h] = inverse_units[rows[h]];
#pragma unroll
        for (int s = 0; s < SCALES; s++) {
            const int column = first_column + s * G;
            float scale = 0.0f;
            if (column < k) {
                if (NVFP4) scale = nk_e4m3_value(reinterpret_cast<const u8*>(scales)[(i64)rows[h] * (k / 16) + column / 16]);
                else scale = T::to_float(reinterpret_cast<const u16*>(scales)[(i64)rows[h] * (k / 64) + column / 64]);
            }
            scale_factors[h][s] = scale * factor;
        }
    }
    nk_cp_async_wait<0>();
    __syncthreads();

    // 3. and 4., PASS n-tiles (8 columns each) at a time: L = up · downᵀ for the warp's 16 rows on the tensor cores,
    //    then each lane's two rows, columns 8j + 2t and 8j + 2t + 1 of n-tile j (one code byte: low, high nibble):
    //    w8 = e4m3(fma(v, s · f, L) · inverse_unit); columns past K are zero.
    const int matrix = lane >> 3, within = lane & 7;
#pragma unroll
    for (int first_tile = 0; first_tile < 16; first_tile += PASS) {
        float accumulators[PASS][4];
#pragma unroll
        for (int j = 0; j < PASS; j++) accumulators[j][0] = accumulators[j][1] = accumulators[j][2] = accumulators[j][3] = 0.0f;
        for (int r = 0; r < rank; r += 16) {
            u32 a[4];
            nk_ldmatrix_x4(a, reinterpret_cast<const u16*>(up_tile + (warp * 16 + (matrix & 1) * 8 + within) * low_rank_stride) + r + (matrix >> 1) * 8);
#pragma unroll
            for (int j = 0; j < PASS; j += 2) {
                u32 b[4];
                nk_ldmatrix_x4(b, reinterpret_cast<const u16*>(down_tile + (8 * (first_tile + j + (matrix >> 1)) + within) * low_rank_stride) + r + (matrix & 1) * 8);
                nk_mma_16816_half<T>(accumulators[j], a, b[0], b[1]);
                nk_mma_16816_half<T>(accumulators[j + 1], a, b[2], b[3]);
            }
        }
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const u32* row_codes = reinterpret_cast<const u32*>(codes_tile + local_rows[h] * W4A4_FP8_CODES_STRIDE);
            u8* target = staged + local_rows[h] * W4A4_FP8_STAGED_STRIDE + 2 * t;
#pragma unroll
            for (int i = 0; i < PASS; i += 4) {
                const uint4 chunk = reinterpret_cast<const uint4*>(row_codes)[(first_tile + i) / 4];
                const u32 words[4] = {chunk.x, chunk.y, chunk.z, chunk.w};
#pragma unroll
                for (int w = 0; w < 4; w++) {
                    const int j = first_tile + i + w, column = first_column + 8 * j + 2 * t;   // K is a multiple of 16: both columns or neither
                    const u32 byte = words[w] >> (8 * t);
                    const float sf = scale_factors[h][(8 * j) / G];
                    const float low = fmaf(w4a4_fp8_code_value<NVFP4>(byte & 0xFu), sf, accumulators[i + w][2 * h]) * inverse[h];
                    const float high = fmaf(w4a4_fp8_code_value<NVFP4>((byte >> 4) & 0xFu), sf, accumulators[i + w][2 * h + 1]) * inverse[h];
                    *reinterpret_cast<u16*>(target + 8 * j) = column < k ? (u16)nk_e4m3x2(low, high) : (u16)0;
                }
            }
        }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < ROWS * W4A4_FP8_EXPAND_COLUMNS / 16 / THREADS; i++) {
        const int chunk = threadIdx.x + THREADS * i, local_row = chunk / 8, part = chunk % 8;
        if (first_row + local_row < n)
            *reinterpret_cast<uint4*>(out + (i64)(first_row + local_row) * depth + first_column + 16 * part) =
                *reinterpret_cast<const uint4*>(staged + local_row * W4A4_FP8_STAGED_STRIDE + 16 * part);
    }
}

#define W4A4_FP8_EXPAND_ARGS                                                                                   \
    const u8* __restrict__ qweight, const void* __restrict__ scales, const float* __restrict__ row_factors,    \
        const float* __restrict__ inverse_units, const u16* __restrict__ proj_up, const u16* __restrict__ down, \
        u8* __restrict__ out, int n, int k, int rank, int depth
#define W4A4_FP8_EXPAND_PASS qweight, scales, row_factors, inverse_units, proj_up, down, out, n, k, rank, depth

// One warp per 16 rows (64 rows a block), 8 n-tiles per pass (fewer registers: more blocks per SM).
#define W4A4_FP8_EXPAND_GEOMETRY 4, 8
NK_KERNEL void __launch_bounds__(128) w4a4_fp8_expand_weights_int4_bf16(W4A4_FP8_EXPAND_ARGS) { w4a4_fp8_expand<NKBFloat16, false, W4A4_FP8_EXPAND_GEOMETRY>(W4A4_FP8_EXPAND_PASS); }
NK_KERNEL void __launch_bounds__(128) w4a4_fp8_expand_weights_int4_f16(W4A4_FP8_EXPAND_ARGS) { w4a4_fp8_expand<NKFloat16, false, W4A4_FP8_EXPAND_GEOMETRY>(W4A4_FP8_EXPAND_PASS); }
NK_KERNEL void __launch_bounds__(128) w4a4_fp8_expand_weights_nvfp4_bf16(W4A4_FP8_EXPAND_ARGS) { w4a4_fp8_expand<NKBFloat16, true, W4A4_FP8_EXPAND_GEOMETRY>(W4A4_FP8_EXPAND_PASS); }
NK_KERNEL void __launch_bounds__(128) w4a4_fp8_expand_weights_nvfp4_f16(W4A4_FP8_EXPAND_ARGS) { w4a4_fp8_expand<NKFloat16, true, W4A4_FP8_EXPAND_GEOMETRY>(W4A4_FP8_EXPAND_PASS); }

// The gated epilogue's channel vectors, made per forward (FLUX's gated residual `x + gate ⊙ layer(a)` folded into
// the FP8 GEMM, whose C is x): scales_out[n] = channel_scales[n] · gate[n] in fp32, and when bias is given
// bias_out[n] = round(bias[n] · gate[n]) in the 16-bit type (the epilogue adds the bias after the scales). Up to
// four layers' vectors per launch (a block's gated layers, once its modulation is known): job blockIdx.y (the grid
// has one row per job given; the other slots are never read), one thread per channel.
struct W4A4FP8GatedJob {
    const u16* gate;
    const float* channel_scales;
    const u16* bias;
    float* scales_out;
    u16* bias_out;
    int n;
};

template <class T>
NK_DEVICE void w4a4_fp8_gated_channels(const W4A4FP8GatedJob& job) {
    const int channel = blockIdx.x * blockDim.x + threadIdx.x;
    if (channel >= job.n) return;
    const float factor = T::to_float(job.gate[channel]);
    job.scales_out[channel] = job.channel_scales[channel] * factor;
    if (job.bias != nullptr) job.bias_out[channel] = T::from_float(T::to_float(job.bias[channel]) * factor);
}

#define W4A4_FP8_GATED_JOB_ARGS(i)                                                                               \
    const u16 *gate##i, const float *channel_scales##i, const u16 *bias##i, float *scales_out##i, u16 *bias_out##i, \
        int n##i
#define W4A4_FP8_GATED_ARGS                                                                                        \
    W4A4_FP8_GATED_JOB_ARGS(0), W4A4_FP8_GATED_JOB_ARGS(1), W4A4_FP8_GATED_JOB_ARGS(2), W4A4_FP8_GATED_JOB_ARGS(3)
#define W4A4_FP8_GATED_JOB(i) W4A4FP8GatedJob{gate##i, channel_scales##i, bias##i, scales_out##i, bias_out##i, n##i}
#define W4A4_FP8_GATED_DISPATCH(T)                                                          \
    switch (blockIdx.y) {                                                                   \
        case 0: w4a4_fp8_gated_channels<T>(W4A4_FP8_GATED_JOB(0)); break;                   \
        case 1: w4a4_fp8_gated_channels<T>(W4A4_FP8_GATED_JOB(1)); break;                   \
        case 2: w4a4_fp8_gated_channels<T>(W4A4_FP8_GATED_JOB(2)); break;                   \
        default: w4a4_fp8_gated_channels<T>(W4A4_FP8_GATED_JOB(3)); break;                  \
    }

NK_KERNEL void w4a4_fp8_gated_channels_bf16(W4A4_FP8_GATED_ARGS) { W4A4_FP8_GATED_DISPATCH(NKBFloat16) }
NK_KERNEL void w4a4_fp8_gated_channels_f16(W4A4_FP8_GATED_ARGS) { W4A4_FP8_GATED_DISPATCH(NKFloat16) }
