// w4a4_fp8_weights.cu: the weight side of the fast (Hopper) W4A4 path, which folds the low-rank branch into the
// weights (so the forward needs no low-rank down-projection pass and no low-rank GEMM columns): a layer's 4-bit
// codes (kept 4-bit in memory) and its low-rank branch expanded into one float8 e4m3 scratch, relative to a
// per-channel unit; the GEMM applies the unit in its epilogue (docs/hopper.md). The layer's dense equivalent in the smoothed input space is
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
// Grid: one block of 256 threads (8 warps) per 128 rows × 256 columns of the scratch (x: columns, ceil(depth / 256);
// y: rows). Each lane first loads, for its two rows (g and g + 8 of its warp's 16), the codes of the canonical qweight
// [N, K/2] (low nibble first: 16 bytes per pair of 64-column parts, which it later swaps with its partner lane so that
// it holds its own 16 codes of each part), per part the group scale of its 16 columns, the row factor and the inverse
// unit; then the block copies down's rows of its columns and up's 128 rows into shared
// memory with cp.async, in two groups of 128 columns (chunk-major; the down rows permuted so that n-tile j of an mma
// gives lane t the 16 consecutive columns 16t..16t+15; zero past K and N), and works on the first 128 columns while
// the second group is in flight. Per 64-column part a warp computes L for its 16 rows on the tensor cores (mma.sync
// m16n8k16 from ldmatrix fragments) and each lane writes its two rows' 16 codes as one 16-byte store; a part past
// depth is skipped. Dynamic shared memory: (256 + 128) · 2R bytes (`CUDASVDQW4A4FastLinear.expansionLaunch`).
// Scales are [N, K/G] (transposed at upload). K a multiple of 32 (INT4: 64), R a multiple of 16, depth a multiple of
// 128 at least K.
// Each kernel comes twice: for any rank, and as `_r32` with the rank a compile-time 32 (FLUX's checkpoints; 80 registers
// instead of 108, 4–7 % faster on an H200); `CUDASVDQW4A4FastLinear.expansionKernel` picks by the layer's rank.
#include "w4a4_half.cuh"
#include "w4a4_fp8.cuh"
#include "ops_mma.cuh"
#include "attention_wgmma.cuh"

#define W4A4_FOLD_ROWS 128
#define W4A4_FOLD_THREADS 256
#define W4A4_FOLD_COLUMNS 128
// 128-column parts of a block, each its own copy group: the first part's math overlaps the second's copy.
#define W4A4_FOLD_SUBTILES 2
/// Starts copying the first `bytes` (0…16) of 16 bytes from global to the shared-memory address `destination`,
/// zero-filling the rest.
NK_DEVICE void w4a4_fold_copy_async_shared(u32 destination, const void* source, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(destination), "l"(source), "r"(bytes) : "memory");
}
/// `w4a4_fold_copy_async_shared` to a generic pointer into shared memory.
NK_DEVICE void w4a4_fold_copy_async(void* destination, const void* source, int bytes) {
    w4a4_fold_copy_async_shared(nk_shared_address(destination), source, bytes);
}

/// Read-only loads as volatile asm: issued where they are written (before the wait for the shared-memory copies).
NK_DEVICE uint2 w4a4_fold_load_u32x2(const u8* address) {
    uint2 r;
    asm volatile("ld.global.nc.v2.u32 {%0, %1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(address));
    return r;
}
NK_DEVICE uint4 w4a4_fold_load_u32x4(const u8* address) {
    uint4 r;
    asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(address));
    return r;
}
NK_DEVICE u32 w4a4_fold_load_u16(const u16* address) {
    u16 r;
    asm volatile("ld.global.nc.u16 %0, [%1];" : "=h"(r) : "l"(address));
    return r;
}
NK_DEVICE u32 w4a4_fold_load_u8(const u8* address) {
    u16 r;
    asm volatile("ld.global.nc.u8 %0, [%1];" : "=h"(r) : "l"(address));
    return r & 0xFFu;
}
NK_DEVICE float w4a4_fold_load_f32(const float* address) {
    float r;
    asm volatile("ld.global.nc.f32 %0, [%1];" : "=f"(r) : "l"(address));
    return r;
}

/// The 16 values of 16 4-bit codes (two words, low nibble first). INT4: q · 16^(i % 4) for nibble i (callers multiply
/// by scale · 16^-(i % 4), exact), each the float 2^23 + (q ^ 8) · 16^(i % 4) made by one `lop3` (the nibble masked and
/// the magic bits set at once) less
/// 2^23 + 8 · 16^(i % 4). NVFP4: twice the E2M1 values (code 8, −0, becomes +0 as in the reference).
template <bool NVFP4>
NK_DEVICE void w4a4_fold_code_values(u32 low_word, u32 high_word, float v[16]) {
#pragma unroll
    for (int i = 0; i < 16; i++) {
        const u32 word = i < 8 ? low_word : high_word;
        if (NVFP4) {
            const u32 code = (word >> (4 * (i % 8))) & 0xFu;
            const int magnitude = (int)((0x0C08060403020100ull >> (8 * (code & 7u))) & 0xFFu);
            v[i] = (float)((code & 8u) ? -magnitude : magnitude);
        } else {
            const u32 part = (i % 8) < 4 ? word : word >> 16;
            u32 bits;   // (part & mask) ^ magic
            asm("lop3.b32 %0, %1, %2, %3, 0x6A;" : "=r"(bits) : "r"(part), "r"(0xFu << (4 * (i % 4))), "r"(0x4B000000u | (8u << (4 * (i % 4)))));
            v[i] = __int_as_float((int)bits) - (8388608.0f + (float)(8 << (4 * (i % 4))));
        }
    }
}

/// A lane's 8 bytes of codes of parts 2q and 2q + 1 (`first`, `second`) from the 16 it loaded for the pair: an even lane
/// t holds bytes 8t..8t+15 of part 2q (its own 8, then its odd partner's), an odd lane bytes 8(t − 1)..8t+7 of part
/// 2q + 1 (its partner's 8, then its own); each sends the partner's 8 (one shuffle of two words).
NK_DEVICE void w4a4_fold_swap_codes(const u32 (&loaded)[4], int t, u32 (&first)[2], u32 (&second)[2]) {
    const bool odd = t & 1;
    const u32 sent0 = odd ? loaded[0] : loaded[2], sent1 = odd ? loaded[1] : loaded[3];
    const u32 got0 = __shfl_xor_sync(0xFFFFFFFFu, sent0, 1), got1 = __shfl_xor_sync(0xFFFFFFFFu, sent1, 1);
    first[0] = odd ? got0 : loaded[0], first[1] = odd ? got1 : loaded[1];
    second[0] = odd ? loaded[2] : got0, second[1] = odd ? loaded[3] : got1;
}

/// RANK: the rank as a compile-time constant (the `_r32` kernels: 5–7 % faster on an H200, docs/hopper.md
/// "Session 11"), or 0 to take `rank_argument`.
template <class T, bool NVFP4, int SUBTILES, int RANK>
NK_DEVICE void w4a4_fold_expand(const u8* __restrict__ qweight, const void* __restrict__ scales,
                                const float* __restrict__ row_factors, const float* __restrict__ inverse_units,
                                const u16* __restrict__ proj_up, const u16* __restrict__ down, u8* __restrict__ out,
                                int n, int k, int rank_argument, int depth) {
    const int rank = RANK > 0 ? RANK : rank_argument;
    extern __shared__ __align__(16) u8 w4a4_fold_shared[];
    // Shared tiles chunk-major: 16-byte chunk c (values 8c..8c+7) of row i at (c · rows + i) · 16 bytes, so the
    // eight rows an ldmatrix reads are 128 consecutive bytes (no bank conflicts) and the offsets do not depend on R.
    constexpr int COLUMNS = W4A4_FOLD_COLUMNS * SUBTILES, PARTS = 2 * SUBTILES;   // 64-column parts
    u8* down_tile = w4a4_fold_shared;                                         // [R/8][COLUMNS, permuted per 64][16 B]
    u8* up_tile = down_tile + COLUMNS * 2 * rank;                             // [R/8][128 rows][16 B]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int first_row = blockIdx.y * W4A4_FOLD_ROWS, first_column = blockIdx.x * COLUMNS;

    // 1. First each lane's two rows (g and g + 8 of the warp's 16): their codes, per 64-column part the group scale
    //    of the lane's 16 columns, the row factor and the inverse unit — loaded by volatile asm so that the compiler
    //    issues them before the shared-memory copies (columns past K read earlier columns and are zeroed). A lane
    //    needs 8 bytes of codes per part (columns 16t..16t+15), but per pair of parts it loads 16: lane t the half
    //    16 · ⌊t/2⌋ of part 2q + (t mod 2)'s 32 bytes, so the four lanes of a row read the pair's 64 contiguous bytes
    //    with one load each (8-byte loads made the L2 send each row's codes twice); the partner lanes t and t ^ 1
    //    swap the halves they loaded for each other later (`w4a4_fold_swap_codes`).
    u32 loaded[2][PARTS / 2][4], raw_scales[2][PARTS];
    float factors[2], inverse[2];
    int rows[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        rows[h] = first_row + warp * 16 + g + 8 * h;
        const int row = min(rows[h], n - 1);
        factors[h] = w4a4_fold_load_f32(row_factors + row);
        inverse[h] = w4a4_fold_load_f32(inverse_units + row);
#pragma unroll
        for (int pair = 0; pair < PARTS / 2; pair++) {
            const int column = min(first_column + 64 * (2 * pair + (t & 1)) + 32 * (t >> 1), k - 32);
            const uint4 words = w4a4_fold_load_u32x4(qweight + (i64)row * (k / 2) + column / 2);
            loaded[h][pair][0] = words.x, loaded[h][pair][1] = words.y, loaded[h][pair][2] = words.z, loaded[h][pair][3] = words.w;
        }
#pragma unroll
        for (int part = 0; part < PARTS; part++) {
            const int column = min(first_column + 64 * part + 16 * t, k - 16);
            raw_scales[h][part] = NVFP4 ? w4a4_fold_load_u8(reinterpret_cast<const u8*>(scales) + (i64)row * (k / 16) + column / 16)
                                        : w4a4_fold_load_u16(reinterpret_cast<const u16*>(scales) + (i64)row * (k / 64) + column / 64);
        }
    }
    // 2. Then down's rows of the block's 128 columns (column 16a + 2j + e of a 64-column half at shared row 8j + 2a + e,
    //    so that n-tile j gives lane t the columns 16t..16t+15) and up's rows, by cp.async (zero past K / N):
    //    consecutive threads copy consecutive chunks of one row, so a warp reads whole 32-byte sectors.
    const int chunks = rank / 8, magic = chunks > 0 ? ((1 << 20) + chunks - 1) / chunks : 0;   // i / chunks = (i · magic) >> 20 here
#pragma unroll
    for (int sub = 0; sub < SUBTILES; sub++) {   // one copy group per 128 columns, up's rows with the first
        for (int i = threadIdx.x; i < W4A4_FOLD_COLUMNS * chunks; i += W4A4_FOLD_THREADS) {
            const int local = sub * W4A4_FOLD_COLUMNS + ((i * magic) >> 20), c = i - ((i * magic) >> 20) * chunks;
            const int column = first_column + local, w = local & 63;
            const int shared_row = (local & ~63) + 8 * ((w >> 1) & 7) + 2 * (w >> 4) + (w & 1);
            w4a4_fold_copy_async(down_tile + (c * COLUMNS + shared_row) * 16,
                                 down + (i64)min(column, k - 1) * rank + 8 * c, column < k ? 16 : 0);
        }
        if (sub == 0)
            for (int i = threadIdx.x; i < W4A4_FOLD_ROWS * chunks; i += W4A4_FOLD_THREADS) {
                const int local = (i * magic) >> 20, c = i - local * chunks, row = first_row + local;
                w4a4_fold_copy_async(up_tile + (c * W4A4_FOLD_ROWS + local) * 16, proj_up + (i64)min(row, n - 1) * rank + 8 * c, row < n ? 16 : 0);
            }
        nk_cp_async_commit();
    }

    u32 codes[2][PARTS][2];
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
        for (int pair = 0; pair < PARTS / 2; pair++) w4a4_fold_swap_codes(loaded[h][pair], t, codes[h][2 * pair], codes[h][2 * pair + 1]);
    float scale_factors[2][PARTS];
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
        for (int half = 0; half < PARTS; half++) {
            const bool inside = first_column + 64 * half + 16 * t < k;
            const float scale = NVFP4 ? nk_e4m3_value(raw_scales[h][half]) : T::to_float((u16)raw_scales[h][half]);
            scale_factors[h][half] = inside ? scale * factors[h] : 0.0f;
            if (!inside) codes[h][half][0] = codes[h][half][1] = 0u;
        }

    // 3. Per 64-column half: L = up · downᵀ for the warp's 16 rows (8 n-tiles of mma.sync accumulators; lane t holds
    //    columns 16t + 2j + e of n-tile j), then w8 = e4m3(fma(v, s · f, L) · inverse_unit) for its two rows' 16
    //    columns, stored as 16 bytes. Columns past K have zero codes, scales and low-rank rows: zero codes.
    // ldmatrix row addresses: A (up) matrices {rows 0-7, 8-15} × {values r..r+7, r+8..r+15}; B (down) matrices
    // {n-tile j, j + 1} × {values r..r+7, r+8..r+15}. Each step of 16 values moves two chunks.
    const int matrix = lane >> 3, within = lane & 7;
    const u16* a_rows = reinterpret_cast<const u16*>(up_tile + (((matrix >> 1) * W4A4_FOLD_ROWS) + warp * 16 + (matrix & 1) * 8 + within) * 16);
#pragma unroll
    for (int half = 0; half < PARTS; half++) {
        if (half % 2 == 0) {   // the next 128 columns: wait for their copy group
            if (first_column + 64 * half >= depth) break;
            if (half == 0) nk_cp_async_wait<SUBTILES - 1>();
            else nk_cp_async_wait<0>();
            __syncthreads();
        }
        float accumulators[8][4];
#pragma unroll
        for (int j = 0; j < 8; j++) accumulators[j][0] = accumulators[j][1] = accumulators[j][2] = accumulators[j][3] = 0.0f;
        const u16* b_rows = reinterpret_cast<const u16*>(down_tile + (((matrix & 1) * COLUMNS) + 64 * half + 8 * (matrix >> 1) + within) * 16);
        for (int r = 0; r < rank; r += 16) {
            const int step = (r / 8) * 8;   // u16 offset of chunk r/8 is (r/8) · rows · 8
            u32 a[4];
            nk_ldmatrix_x4(a, a_rows + step * W4A4_FOLD_ROWS);
#pragma unroll
            for (int j = 0; j < 8; j += 2) {
                u32 b[4];
                nk_ldmatrix_x4(b, b_rows + step * COLUMNS + 8 * j * 8);
                nk_mma_16816_half<T>(accumulators[j], a, b[0], b[1]);
                nk_mma_16816_half<T>(accumulators[j + 1], a, b[2], b[3]);
            }
        }
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float v[16];
            w4a4_fold_code_values<NVFP4>(codes[h][half][0], codes[h][half][1], v);
            float factor[4];
#pragma unroll
            for (int i = 0; i < 4; i++) factor[i] = NVFP4 ? scale_factors[h][half] : scale_factors[h][half] * (1.0f / (float)(1 << (4 * i)));
            float w[16];
#pragma unroll
            for (int x = 0; x < 16; x++) w[x] = fmaf(v[x], factor[x % 4], accumulators[x / 2][2 * h + (x % 2)]) * inverse[h];
            if (rows[h] < n)
                *reinterpret_cast<uint4*>(out + (i64)rows[h] * depth + first_column + 64 * half + 16 * t) =
                    make_uint4(nk_e4m3_pack4(w[0], w[1], w[2], w[3]), nk_e4m3_pack4(w[4], w[5], w[6], w[7]),
                               nk_e4m3_pack4(w[8], w[9], w[10], w[11]), nk_e4m3_pack4(w[12], w[13], w[14], w[15]));
        }
    }
}

#if defined(NK_HAS_WGMMA)
// The Hopper form (`_wgmma_…_r32` kernels, sm_90a, rank 32): one warpgroup per 64 rows × 64·W4A4_WGMMA_PARTS columns
// of the scratch, taken as W4A4_WGMMA_PARTS parts of 64 columns one after the other, so that the set-up (the lane's
// rows, their factors and inverse units, the tile of proj_up, the address arithmetic) is paid once per block and every
// global load is issued before the first part's arithmetic. Per part, L for its 64 rows × 64 columns by wgmma
// (m64n64k16, both operands from shared memory), then the per-code fma. The tiles of proj_up (64 rows) and of down
// (64 columns per part, each part its own cp.async group) are copied into K-major tiles of 64-byte rows (the 32 rank
// values) with the 64-byte swizzle, down's rows permuted so that lane t's accumulator columns are the part's columns
// 16t … 16t + 15 (accumulator column 8i + 2t + e holds column 16t + 2i + e). So per part each lane owns 16 consecutive
// columns of its two rows (g and g + 8 of its warp's 16): 8 bytes of codes, one group scale (INT4 groups of 64, NVFP4
// of 16), one 16-byte store. Parts past depth are skipped; codes past K are zero. Against one part per block
// (session 14's kernels) a third of the instructions go and the blocks fit the multiprocessors in fewer waves
// (docs/hopper.md, "Session 15"). Dynamic shared memory: 4096 · (1 + W4A4_WGMMA_PARTS) + 1024 bytes.
#define W4A4_WGMMA_PARTS 3
#define W4A4_WGMMA_TILE_BYTES 4096   // 64 rows of 32 16-bit values

/// D (64×64, fp32) (+)= A (64×16) · B (16×64), 16-bit operands K-major in shared memory.
template <class T>
NK_DEVICE void w4a4_fold_wgmma(float (&d)[32], u64 a, u64 b, int accumulate) {
#define W4A4_WGMMA_SS_N64(TYPE)                                                                                     \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                     \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " {" NK_REGS32 "}, %32, %33, p, 1, 1, 0, 0;\n}\n" \
                 : NK_ACC32 : "l"(a), "l"(b), "r"(accumulate))
    if constexpr (T::is_bf16) { W4A4_WGMMA_SS_N64("bf16"); } else { W4A4_WGMMA_SS_N64("f16"); }
#undef W4A4_WGMMA_SS_N64
}

/// Byte offset of 16-byte chunk `chunk` (0…3) of row `row` in a tile of 64-byte rows with the 64-byte swizzle (chunk
/// c of row r at c ^ ((r / 2) mod 4)).
NK_DEVICE u32 w4a4_fold_swizzled(int row, int chunk) { return row * 64 + ((chunk ^ ((row >> 1) & 3)) * 16); }

/// The wgmma descriptor of a K-major tile of 64-byte rows with the 64-byte swizzle (groups of 8 rows 512 bytes apart).
NK_DEVICE u64 w4a4_fold_descriptor(u32 address) {
    return (u64)((address >> 4) & 0x3FFFu) | (1ull << 16) | ((u64)(512 >> 4) << 32) | (2ull << 62);
}

/// cp.async.wait_group with a run-time count (0…3).
NK_DEVICE void w4a4_fold_wait_copies(int pending) {
    switch (pending) {
        case 0: nk_cp_async_wait<0>(); break;
        case 1: nk_cp_async_wait<1>(); break;
        case 2: nk_cp_async_wait<2>(); break;
        default: nk_cp_async_wait<3>(); break;
    }
}

template <class T, bool NVFP4>
NK_DEVICE void w4a4_fold_expand_wgmma(const u8* __restrict__ qweight, const void* __restrict__ scales,
                                      const float* __restrict__ row_factors, const float* __restrict__ inverse_units,
                                      const u16* __restrict__ proj_up, const u16* __restrict__ down, u8* __restrict__ out,
                                      int n, int k, int, int depth) {
    constexpr int rank = 32, PARTS = W4A4_WGMMA_PARTS;
    static_assert(PARTS <= 4, "w4a4_fold_wait_copies waits for at most 3 pending groups");
    extern __shared__ __align__(16) u8 w4a4_fold_shared[];
    const u32 shared = nk_shared_address(w4a4_fold_shared), base = (shared + 1023u) & ~1023u;   // up, then down's parts
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int first_row = blockIdx.y * 64, first_column = blockIdx.x * (64 * PARTS);
    const int parts = min(PARTS, (depth - first_column) / 64);

    // 1. Per row of the lane and part: its codes (8 bytes), its group scale, the row's factor and inverse unit
    //    (volatile loads: issued before the copies).
    uint2 words[2][PARTS];
    u32 raw_scales[2][PARTS];
    float factors[2], inverse[2];
    int rows[2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        rows[h] = first_row + warp * 16 + g + 8 * h;
        const u32 row = (u32)min(rows[h], n - 1), width = (u32)k;   // unsigned: the divisions below are shifts
        factors[h] = w4a4_fold_load_f32(row_factors + row);
        inverse[h] = w4a4_fold_load_f32(inverse_units + row);
        const u8* const row_codes = qweight + (u64)row * (width / 2);
        const u8* const row_scales = reinterpret_cast<const u8*>(scales) + (u64)row * (NVFP4 ? width / 16 : width / 64 * 2);
#pragma unroll
        for (int p = 0; p < PARTS; p++) {
            const u32 at = min((u32)(first_column + 64 * p + 16 * t), width - 16);   // K is a multiple of 16: all 16 inside or past
            words[h][p] = w4a4_fold_load_u32x2(row_codes + at / 2);
            raw_scales[h][p] = NVFP4 ? w4a4_fold_load_u8(row_scales + at / 16)
                                     : w4a4_fold_load_u16(reinterpret_cast<const u16*>(row_scales) + at / 64);
        }
    }
    // 2. The tiles by cp.async (zero past N and K): up with part 0's down tile, then one group per further part.
    //    Thread i copies chunk i mod 4 of rows (columns) i/4 and i/4 + 32, at the same offsets in every part.
    const int chunk = threadIdx.x & 3;
    u32 down_offsets[2];
#pragma unroll
    for (int j = 0; j < 2; j++) {
        const int local = (threadIdx.x >> 2) + 32 * j, row = first_row + local, within = local & 15;
        w4a4_fold_copy_async_shared(base + w4a4_fold_swizzled(local, chunk), proj_up + (u32)min(row, n - 1) * (u32)rank + 8 * chunk,
                                    row < n ? 16 : 0);
        down_offsets[j] = w4a4_fold_swizzled(8 * (within >> 1) + 2 * (local >> 4) + (local & 1), chunk);
    }
#pragma unroll
    for (int p = 0; p < PARTS; p++) {
        if (p < parts) {
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const int source = first_column + 64 * p + (threadIdx.x >> 2) + 32 * j;
                w4a4_fold_copy_async_shared(base + W4A4_WGMMA_TILE_BYTES * (p + 1) + down_offsets[j],
                                            down + (u32)min(source, k - 1) * (u32)rank + 8 * chunk, source < k ? 16 : 0);
            }
        }
        nk_cp_async_commit();
    }
    float scale_factors[2][PARTS];
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
        for (int p = 0; p < PARTS; p++) {
            const bool inside = first_column + 64 * p + 16 * t < k;
            const float scale = NVFP4 ? nk_e4m3_value(raw_scales[h][p]) : T::to_float((u16)raw_scales[h][p]);
            scale_factors[h][p] = inside ? scale * factors[h] : 0.0f;
            if (!inside) words[h][p] = make_uint2(0u, 0u);
        }

    // 3. Per part: L = up · downᵀ on the tensor cores, then w8 = e4m3(fma(v, s · f, L) · inverse_unit) for the lane's
    //    two rows: column 16t + x of the part is element 4(x/2) + 2h + x mod 2 of the lane's accumulators.
#pragma unroll
    for (int p = 0; p < PARTS; p++) {
        if (p >= parts) break;
        w4a4_fold_wait_copies(PARTS - 1 - p);
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");   // the copies, visible to the tensor cores
        __syncthreads();
        float accumulators[32];
        nk_wgmma_fence();
#pragma unroll
        for (int step = 0; step < rank / 16; step++)
            w4a4_fold_wgmma<T>(accumulators, w4a4_fold_descriptor(base + 32 * step),
                               w4a4_fold_descriptor(base + W4A4_WGMMA_TILE_BYTES * (p + 1) + 32 * step), step > 0);
        nk_wgmma_commit();
        nk_wgmma_wait<0>();
        nk_wgmma_pin(accumulators);
        const int column = first_column + 64 * p + 16 * t;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float v[16];
            w4a4_fold_code_values<NVFP4>(words[h][p].x, words[h][p].y, v);
            float w[16];
#pragma unroll
            for (int x = 0; x < 16; x++) {
                const float factor = NVFP4 ? scale_factors[h][p] : scale_factors[h][p] * (1.0f / (float)(1 << (4 * (x % 4))));
                w[x] = fmaf(v[x], factor, accumulators[4 * (x / 2) + 2 * h + (x % 2)]) * inverse[h];
            }
            // Launched as a programmatic dependent (`overlappingPredecessor`), everything above (weights only, which no
            // kernel writes) overlaps the end of the kernel before; the scratch may still be read by it.
            if (p == 0 && h == 0) asm volatile("griddepcontrol.wait;" ::: "memory");
            if (rows[h] < n)
                *reinterpret_cast<uint4*>(out + (i64)rows[h] * depth + column) =
                    make_uint4(nk_e4m3_pack4(w[0], w[1], w[2], w[3]), nk_e4m3_pack4(w[4], w[5], w[6], w[7]),
                               nk_e4m3_pack4(w[8], w[9], w[10], w[11]), nk_e4m3_pack4(w[12], w[13], w[14], w[15]));
        }
    }
}
#endif  // NK_HAS_WGMMA

#define W4A4_FOLD_ARGS                                                                                   \
    const u8* __restrict__ qweight, const void* __restrict__ scales, const float* __restrict__ row_factors,    \
        const float* __restrict__ inverse_units, const u16* __restrict__ proj_up, const u16* __restrict__ down, \
        u8* __restrict__ out, int n, int k, int rank, int depth
#define W4A4_FOLD_PASS qweight, scales, row_factors, inverse_units, proj_up, down, out, n, k, rank, depth

// Each kernel in two forms: any rank (a multiple of 16 up to 256), and `_r32` for rank 32 (the host picks by name).
NK_KERNEL void __launch_bounds__(W4A4_FOLD_THREADS) w4a4_fp8_expand_weights_int4_bf16(W4A4_FOLD_ARGS) { w4a4_fold_expand<NKBFloat16, false, W4A4_FOLD_SUBTILES, 0>(W4A4_FOLD_PASS); }
NK_KERNEL void __launch_bounds__(W4A4_FOLD_THREADS) w4a4_fp8_expand_weights_int4_bf16_r32(W4A4_FOLD_ARGS) { w4a4_fold_expand<NKBFloat16, false, W4A4_FOLD_SUBTILES, 32>(W4A4_FOLD_PASS); }
NK_KERNEL void __launch_bounds__(W4A4_FOLD_THREADS) w4a4_fp8_expand_weights_int4_f16(W4A4_FOLD_ARGS) { w4a4_fold_expand<NKFloat16, false, W4A4_FOLD_SUBTILES, 0>(W4A4_FOLD_PASS); }
NK_KERNEL void __launch_bounds__(W4A4_FOLD_THREADS) w4a4_fp8_expand_weights_int4_f16_r32(W4A4_FOLD_ARGS) { w4a4_fold_expand<NKFloat16, false, W4A4_FOLD_SUBTILES, 32>(W4A4_FOLD_PASS); }
NK_KERNEL void __launch_bounds__(W4A4_FOLD_THREADS) w4a4_fp8_expand_weights_nvfp4_bf16(W4A4_FOLD_ARGS) { w4a4_fold_expand<NKBFloat16, true, W4A4_FOLD_SUBTILES, 0>(W4A4_FOLD_PASS); }
NK_KERNEL void __launch_bounds__(W4A4_FOLD_THREADS) w4a4_fp8_expand_weights_nvfp4_bf16_r32(W4A4_FOLD_ARGS) { w4a4_fold_expand<NKBFloat16, true, W4A4_FOLD_SUBTILES, 32>(W4A4_FOLD_PASS); }
NK_KERNEL void __launch_bounds__(W4A4_FOLD_THREADS) w4a4_fp8_expand_weights_nvfp4_f16(W4A4_FOLD_ARGS) { w4a4_fold_expand<NKFloat16, true, W4A4_FOLD_SUBTILES, 0>(W4A4_FOLD_PASS); }
NK_KERNEL void __launch_bounds__(W4A4_FOLD_THREADS) w4a4_fp8_expand_weights_nvfp4_f16_r32(W4A4_FOLD_ARGS) { w4a4_fold_expand<NKFloat16, true, W4A4_FOLD_SUBTILES, 32>(W4A4_FOLD_PASS); }

// The Hopper forms (sm_90a only; empty elsewhere, where the host never picks them), at rank 32.
#if defined(NK_HAS_WGMMA)
#define W4A4_FOLD_WGMMA(T, NVFP4) w4a4_fold_expand_wgmma<T, NVFP4>(W4A4_FOLD_PASS);
#else
#define W4A4_FOLD_WGMMA(T, NVFP4)
#endif
NK_KERNEL void __launch_bounds__(128) w4a4_fp8_expand_weights_wgmma_int4_bf16_r32(W4A4_FOLD_ARGS) { W4A4_FOLD_WGMMA(NKBFloat16, false) }
NK_KERNEL void __launch_bounds__(128) w4a4_fp8_expand_weights_wgmma_int4_f16_r32(W4A4_FOLD_ARGS) { W4A4_FOLD_WGMMA(NKFloat16, false) }
NK_KERNEL void __launch_bounds__(128) w4a4_fp8_expand_weights_wgmma_nvfp4_bf16_r32(W4A4_FOLD_ARGS) { W4A4_FOLD_WGMMA(NKBFloat16, true) }
NK_KERNEL void __launch_bounds__(128) w4a4_fp8_expand_weights_wgmma_nvfp4_f16_r32(W4A4_FOLD_ARGS) { W4A4_FOLD_WGMMA(NKFloat16, true) }

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
