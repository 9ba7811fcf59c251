// w4a4_fp8_lowrank_down.cu: step 1 of the fast (Hopper) W4A4 path, the low-rank down-projection
// L[M, R] = round16(Σ_k x[m, k] · P[r, k]) with fp32 sums (docs/hopper.md), P = the layer's proj_down transposed
// [R, K] in the activation dtype. Bandwidth-shaped: x is streamed from HBM once with 16-byte loads straight into
// mma.sync m16n8k16 fragments (no shared-memory staging), P (small, K·R·2 bytes) is read with 16-byte loads
// through L1/L2.
//
// Fragments without shuffles: the sum over k does not depend on which k of a tile a fragment slot stands for, as
// long as x and P use the same assignment. Lane 4·g + t loads 8 consecutive values (16 bytes) of x rows g and g + 8
// and of P row g at column 32·c + 8·t of chunk c (32 columns, two k16 steps); in step s its words 2s and 2s + 1 fill
// the A slots (2t, 2t+1) and (2t+8, 2t+9) and the B slots of the same k (ops_mma.cuh has the layouts).
//
// Grid: (⌈M / ROWS⌉, ⌈R / 32⌉); block: W warps (32…512 threads). Each block takes ROWS rows (8 or 16: kernels
// _m8, _m16; with 8 the upper half of each m16 tile is zero) and 32 of the R columns (16 in a last chunk of
// R ≡ 16 mod 32); warp w takes the K chunks w, w + W, … (adjacent warps read adjacent 64-byte pieces of a row), four
// chunks' loads in flight before their mma. The warps' fp32 partial sums meet in shared memory and are added in
// warp order, so L does not depend on timing; then rounded once to the activation type. The template's MT (m16
// tiles per warp) is 1 in both kernels: 2 and 4 reuse P more but were slower where this kernel is used (the sweep in
// docs/hopper.md). The host picks the kernel and W (`CUDASVDQW4A4FastLinear.lowRankDownLaunch`): small M only —
// for M in the thousands cuBLASLt is faster (docs/hopper.md). Dynamic shared memory: W · ROWS · 40 floats.
// x [M, K] row-major, P [R, K] row-major, out [M, R]; K a multiple of 32, R a multiple of 16 up to 256, M ≥ 1.
#include "w4a4_half.cuh"
#include "ops_mma.cuh"

/// Floats per row of a warp's partial-sum tile in shared memory (32 columns + 8 of padding: conflict-free float2).
#define W4A4_LOWRANK_DOWN_STRIDE 40

/// 16 bytes of x that are read once: not kept in L1.
NK_DEVICE uint4 w4a4_lowrank_down_stream(const uint4* address) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(address));
    return v;
}

NK_DEVICE u32 w4a4_lowrank_down_word(const uint4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

template <class T, int MT, int NT, int ROWS>
NK_DEVICE void w4a4_lowrank_down_block(const u16* __restrict__ x, const u16* __restrict__ proj_down_t,
                                       u16* __restrict__ out, int m, int k, int rank, float* partial) {
    // Chunks loaded together before their mma.
    constexpr int AHEAD = MT == 1 ? 4 : MT == 2 ? 2 : 1;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const i64 first_row = (i64)blockIdx.x * ROWS;
    const int first_column = blockIdx.y * 32;
    const int vectors = k / 8;  // uint4 per row

    const uint4* rows[MT][2];
    bool valid[MT][2];
#pragma unroll
    for (int i = 0; i < MT; i++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const i64 row = first_row + 16 * i + 8 * h + g;
            valid[i][h] = 16 * i + 8 * h < ROWS && row < m;
            rows[i][h] = reinterpret_cast<const uint4*>(x) + (valid[i][h] ? row : 0) * vectors + t;
        }
    }
    const uint4* columns[NT];
#pragma unroll
    for (int j = 0; j < NT; j++)
        columns[j] = reinterpret_cast<const uint4*>(proj_down_t) + (i64)(first_column + 8 * j + g) * vectors + t;

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;

    const int chunks = k / 32;
    for (int c = warp; c < chunks; c += AHEAD * warps) {
        uint4 a[AHEAD][MT][2], b[AHEAD][NT];
#pragma unroll
        for (int u = 0; u < AHEAD; u++) {
            const int chunk = c + u * warps;
            const int offset = (chunk < chunks ? chunk : c) * 4;
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) a[u][i][h] = 16 * i + 8 * h < ROWS ? w4a4_lowrank_down_stream(rows[i][h] + offset) : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int j = 0; j < NT; j++) b[u][j] = __ldg(columns[j] + offset);
        }
#pragma unroll
        for (int u = 0; u < AHEAD; u++) {
            if (c + u * warps >= chunks) break;
#pragma unroll
            for (int s = 0; s < 2; s++) {
#pragma unroll
                for (int i = 0; i < MT; i++) {
                    const u32 low = valid[i][0] ? 0xFFFFFFFFu : 0u, high = valid[i][1] ? 0xFFFFFFFFu : 0u;
                    const u32 fragment[4] = {w4a4_lowrank_down_word(a[u][i][0], 2 * s) & low,
                                             w4a4_lowrank_down_word(a[u][i][1], 2 * s) & high,
                                             w4a4_lowrank_down_word(a[u][i][0], 2 * s + 1) & low,
                                             w4a4_lowrank_down_word(a[u][i][1], 2 * s + 1) & high};
#pragma unroll
                    for (int j = 0; j < NT; j++)
                        nk_mma_16816_half<T>(acc[i][j], fragment, w4a4_lowrank_down_word(b[u][j], 2 * s),
                                                 w4a4_lowrank_down_word(b[u][j], 2 * s + 1));
                }
            }
        }
    }

    // Partial sums → shared memory [warp][16·MT][STRIDE]; then the fixed-order sum over warps.
    float* mine = partial + warp * ROWS * W4A4_LOWRANK_DOWN_STRIDE;
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++) {
            const int column = 8 * j + 2 * t;
            *reinterpret_cast<float2*>(mine + (16 * i + g) * W4A4_LOWRANK_DOWN_STRIDE + column) = make_float2(acc[i][j][0], acc[i][j][1]);
            if (16 * i + 8 < ROWS)
                *reinterpret_cast<float2*>(mine + (16 * i + g + 8) * W4A4_LOWRANK_DOWN_STRIDE + column) = make_float2(acc[i][j][2], acc[i][j][3]);
        }
    __syncthreads();
    constexpr int COLUMNS = 8 * NT;
    const int tile = ROWS * W4A4_LOWRANK_DOWN_STRIDE;
    for (int e = threadIdx.x; e < ROWS * COLUMNS; e += blockDim.x) {
        const int row = e / COLUMNS, column = e % COLUMNS;
        if (first_row + row >= m) break;
        const float* source = partial + row * W4A4_LOWRANK_DOWN_STRIDE + column;
        float sum = source[0];
        for (int w = 1; w < warps; w++) sum += source[w * tile];
        out[(first_row + row) * rank + first_column + column] = T::from_float(sum);
    }
}

template <class T, int MT, int ROWS>
NK_DEVICE void w4a4_lowrank_down(const u16* __restrict__ x, const u16* __restrict__ proj_down_t, u16* __restrict__ out,
                                 int m, int k, int rank) {
    extern __shared__ __align__(16) float w4a4_lowrank_down_shared[];
    if (rank - (int)blockIdx.y * 32 >= 32) w4a4_lowrank_down_block<T, MT, 4, ROWS>(x, proj_down_t, out, m, k, rank, w4a4_lowrank_down_shared);
    else w4a4_lowrank_down_block<T, MT, 2, ROWS>(x, proj_down_t, out, m, k, rank, w4a4_lowrank_down_shared);
}

#define W4A4_LOWRANK_DOWN_ARGS const u16* __restrict__ x, const u16* __restrict__ proj_down_t, u16* __restrict__ out, int m, int k, int rank
#define W4A4_LOWRANK_DOWN_PASS x, proj_down_t, out, m, k, rank

NK_KERNEL void w4a4_fp8_lowrank_down_bf16_m8(W4A4_LOWRANK_DOWN_ARGS) { w4a4_lowrank_down<NKBFloat16, 1, 8>(W4A4_LOWRANK_DOWN_PASS); }
NK_KERNEL void w4a4_fp8_lowrank_down_bf16_m16(W4A4_LOWRANK_DOWN_ARGS) { w4a4_lowrank_down<NKBFloat16, 1, 16>(W4A4_LOWRANK_DOWN_PASS); }
NK_KERNEL void w4a4_fp8_lowrank_down_f16_m8(W4A4_LOWRANK_DOWN_ARGS) { w4a4_lowrank_down<NKFloat16, 1, 8>(W4A4_LOWRANK_DOWN_PASS); }
NK_KERNEL void w4a4_fp8_lowrank_down_f16_m16(W4A4_LOWRANK_DOWN_ARGS) { w4a4_lowrank_down<NKFloat16, 1, 16>(W4A4_LOWRANK_DOWN_PASS); }
