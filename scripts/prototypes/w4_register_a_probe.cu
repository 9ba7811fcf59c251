// w4_register_a_probe.cu (prototype, not used by the engine): can the tensor cores stay busy when the 4-bit weights
// are wgmma's A operand, converted to e4m3 in registers at every k-step? The question behind a GEMM that reads the
// 4-bit weights itself (docs/hopper.md, "What the per-shape GEMM target needs"). scripts/w4_register_a_probe.py
// checks the products against PyTorch and times five loops of m64n256k32 e4m3 wgmma over a B tile that
// stays in shared memory (no memory traffic but the codes, so the tensor pipe and the issue slots are measured), one
// entry point per mode (`w4_register_a_probe_mode<N>`):
//   mode 0: A from shared memory (the plain GEMM's main loop);
//   mode 1: A from registers, the same fragment every step (no conversion);
//   mode 2: A from registers, converted per step from 16 nibbles per thread (codes q, value q − 8) with the row's
//           group scale s (f16, one per row and 64 columns of K): a = e4m3(f16((q − 8) · s)); the codes and scales
//           of the next four steps are loaded (from L2) while the current four run;
//   mode 3: as mode 2, but every chunk converts the first chunk's codes again (the conversion without the loads);
//   mode 4: as mode 2, the codes and scales brought by a producer warp's bulk copies into a ring of `kStages`
//           shared-memory stages, one per chunk of four steps (codes [chunk][warpgroup][step][thread], scales
//           [chunk][warpgroup][row][2 groups]), each thread reading its words from there: how a GEMM would bring them.
// Conversion of a pair: the nibbles masked into the mantissa of 1024 (low nibble) or as 16·q (high nibble), the
// magic subtracted exactly (hsub2), the scale multiplied (hmul2, s or s/16), cvt.rn.satfinite.e4m3x2.f16x2.
// Each thread's 16 nibbles per step are two words, one per pair of fragment registers (a0 with a1, a2 with a3): for
// fragment values x[0..3] (row g) and y[0..3] (row g + 8) the nibbles n0..n7 hold x0 x2 y0 y2 x1 x3 y1 y3, so the
// masks 0x000F000F and 0x00F000F0 (of the word, then of the word >> 8) give the pairs (x0, x1), (x2, x3), (y0, y1),
// (y2, y3) in f16 halves, each converted to two bytes in fragment order.
// Block: two warpgroups of 64 rows of A each, one B tile of 256 rows × 128 bytes (four 32-deep k-slices, 128-byte
// swizzle); step k uses slice k mod 4. The A fragment of step k + 1 is converted while step k's wgmma runs.
// H100: docs/hopper.md, "What the per-shape GEMM target needs".
#include "w4_convert.cuh"

#if defined(NK_HAS_WGMMA)

constexpr int kBRows = 256;
constexpr int kSliceBytes = 128;
constexpr int kStages = 4;
constexpr u32 kChunkCodeBytes = 2 * 4 * 128 * 8, kChunkScaleBytes = 2 * 64 * 2 * 2;
constexpr u32 kStageBytes = kChunkCodeBytes + kChunkScaleBytes;

/// D (64×256, fp32) += A (64×32 e4m3, registers: a0 = A[g][4t..], a1 = A[g+8][4t..], a2 = A[g][16+4t..],
/// a3 = A[g+8][16+4t..]) · B (32×256, stored N×K, K-major in shared memory).
NK_DEVICE void wgmma_n256_e4m3_rs(float (&d)[128], const u32 (&a)[4], u64 b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k32.f32.e4m3.e4m3 {" WGMMA_REGS_128 "}, {%128, %129, %130, %131}, %132, p, 1, 1;\n}\n"
                 : R32(0), R32(32), R32(64), R32(96) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
}

/// The fragment of one k-step from its two code words and the scale pairs of rows g and g + 8.
NK_DEVICE void convert_fragment(u32 (&a)[4], uint2 codes, u32 low0, u32 high0, u32 low1, u32 high1) {
    a[0] = convert4(codes.x, low0, high0);
    a[1] = convert4(codes.x >> 8, low1, high1);
    a[2] = convert4(codes.y, low0, high0);
    a[3] = convert4(codes.y >> 8, low1, high1);
}

/// Copies a [rows][128] byte tile from global memory into 128-byte-swizzled shared memory at `tile`.
NK_DEVICE void load_swizzled(u32 tile, const u8* source, int rows) {
    for (int chunk = threadIdx.x; chunk < rows * 8; chunk += blockDim.x) {
        const int r = chunk / 8, c = chunk % 8;
        const uint4 v = *reinterpret_cast<const uint4*>(source + r * kSliceBytes + c * 16);
        asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};" :: "r"(tile + r * kSliceBytes + ((c ^ (r % 8)) * 16)),
                     "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
    }
}

template <int Mode>
NK_DEVICE void probe(const u8* __restrict__ bTile, const u8* __restrict__ aTiles, const uint2* __restrict__ codes,
                     const u16* __restrict__ scales, const u32* __restrict__ fragments, float* __restrict__ out, int steps) {
    extern __shared__ __align__(1024) u8 shared[];
    const u32 base = (static_cast<u32>(__cvta_generic_to_shared(shared)) + 1023) & ~1023u;
    const u32 bBase = base, aBase = base + kBRows * kSliceBytes;
    const int group = threadIdx.x / 128, thread = threadIdx.x % 128;
    const int warp = thread / 32, lane = thread % 32, g = lane / 4;
    const int row0 = 16 * warp + g, row1 = row0 + 8, groups = steps / 2;
    // Mode 4's ring: stages after the B and A tiles, then the full and empty mbarriers.
    const u32 ring = aBase + 128 * kSliceBytes, full = ring + kStages * kStageBytes, empty = full + kStages * 8;
    load_swizzled(bBase, bTile, kBRows);
    load_swizzled(aBase, aTiles, 128);
    if constexpr (Mode == 4) {
        if (threadIdx.x == 0) {
            for (int stage = 0; stage < kStages; ++stage) {
                nk_mbarrier_init(full + stage * 8, 1);
                nk_mbarrier_init(empty + stage * 8, 8);  // the eight consumer warps
            }
            nk_fence_mbarrier_init();
        }
    }
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
    if constexpr (Mode == 4) {
        if (threadIdx.x >= 256) {  // the producer warp
            if (threadIdx.x == 256) {
                for (int chunk = 0; chunk < steps / 4; ++chunk) {
                    const int stage = chunk % kStages;
                    if (chunk >= kStages) nk_mbarrier_wait(empty + stage * 8, ((chunk / kStages) - 1) & 1);
                    nk_mbarrier_arrive_expect_bytes(full + stage * 8, kStageBytes);
                    bulk_copy(ring + stage * kStageBytes, codes + (size_t)chunk * (kChunkCodeBytes / 8), kChunkCodeBytes, full + stage * 8);
                    bulk_copy(ring + stage * kStageBytes + kChunkCodeBytes, scales + (size_t)chunk * (kChunkScaleBytes / 2),
                              kChunkScaleBytes, full + stage * 8);
                }
            }
            return;
        }
    }
    const u16* myScales = scales + group * 64 * groups;
    const uint2* myCodes = codes + (size_t)group * steps * 128 + thread;
    float acc[128];
#pragma unroll
    for (int i = 0; i < 128; ++i) acc[i] = 0.0f;
    const u32 aTile = aBase + group * 64 * kSliceBytes;
    if constexpr (Mode == 0) {
        for (int step = 0; step < steps; ++step) {
            nk_wgmma_fence();
            wgmma_n256_e4m3(acc, nk_wgmma_descriptor(aTile + (step % 4) * 32, 16, 1024),
                            nk_wgmma_descriptor(bBase + (step % 4) * 32, 16, 1024), 1);
            nk_wgmma_commit();
            nk_wgmma_wait<1>();
            nk_wgmma_pin(acc);
        }
    } else if constexpr (Mode == 1) {
        u32 a[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = fragments[(group * 128 + thread) * 4 + i];
        for (int step = 0; step < steps; ++step) {
            nk_wgmma_fence();
            wgmma_n256_e4m3_rs(acc, a, nk_wgmma_descriptor(bBase + (step % 4) * 32, 16, 1024), 1);
            nk_wgmma_commit();
            nk_wgmma_wait<1>();
            nk_wgmma_pin(acc);
        }
    } else {
        // Steps in chunks of 4 (two 64-column groups): the next chunk's codes and scales are loaded while this
        // chunk's wgmmas run, so the L2's latency is hidden; step k + 1's fragment is converted while step k runs.
        uint2 codes4[4], next4[4];
        u16 scale4[4], nextScale4[4];  // rows g and g + 8 of the chunk's two groups
        const auto loadChunk = [&](int chunk, uint2 (&c)[4], u16 (&sc)[4]) {
            if constexpr (Mode == 4) {
                const int index = chunk / 4, stage = index % kStages;
                nk_mbarrier_wait(full + stage * 8, (index / kStages) & 1);
                const u32 stageCodes = ring + stage * kStageBytes + group * 4 * 128 * 8 + thread * 8;
                const u32 stageScales = ring + stage * kStageBytes + kChunkCodeBytes + group * 64 * 4;
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];" : "=r"(c[i].x), "=r"(c[i].y) : "r"(stageCodes + i * 128 * 8));
                }
                const u32 rows[4] = {stageScales + row0 * 4, stageScales + row1 * 4, stageScales + row0 * 4 + 2, stageScales + row1 * 4 + 2};
#pragma unroll
                for (int i = 0; i < 4; ++i) asm volatile("ld.shared.u16 %0, [%1];" : "=h"(sc[i]) : "r"(rows[i]));
                __syncwarp();
                if (lane == 0) nk_mbarrier_arrive(empty + stage * 8);  // release: the loads above are done
            } else {
#pragma unroll
                for (int i = 0; i < 4; ++i) c[i] = myCodes[(size_t)(chunk + i) * 128];
                sc[0] = myScales[row0 * groups + chunk / 2];
                sc[1] = myScales[row1 * groups + chunk / 2];
                sc[2] = myScales[row0 * groups + chunk / 2 + 1];
                sc[3] = myScales[row1 * groups + chunk / 2 + 1];
            }
        };
        const auto convertStep = [&](u32 (&a)[4], uint2 c, u16 s0, u16 s1) {
            const u32 low0 = s0 | ((u32)s0 << 16), low1 = s1 | ((u32)s1 << 16);
            convert_fragment(a, c, low0, mul2(low0, 0x2C002C00u), low1, mul2(low1, 0x2C002C00u));  // · 1/16
        };
        const auto issue = [&](const u32 (&a)[4], int step) {
            nk_wgmma_fence();
            wgmma_n256_e4m3_rs(acc, a, nk_wgmma_descriptor(bBase + (step % 4) * 32, 16, 1024), 1);
            nk_wgmma_commit();
            nk_wgmma_wait<1>();
            nk_wgmma_pin(acc);
        };
        u32 a0[4], a1[4];
        loadChunk(0, codes4, scale4);
        convertStep(a0, codes4[0], scale4[0], scale4[1]);
        for (int chunk = 0; chunk < steps; chunk += 4) {
            const bool more = chunk + 4 < steps;
            if (more) {
                if constexpr (Mode != 3) {
                    loadChunk(chunk + 4, next4, nextScale4);
                } else {  // mode 3: the first chunk's codes and scales again (the conversion without its loads)
#pragma unroll
                    for (int i = 0; i < 4; ++i) { next4[i] = codes4[i]; nextScale4[i] = scale4[i]; }
                }
            }
            issue(a0, chunk);
            convertStep(a1, codes4[1], scale4[0], scale4[1]);
            issue(a1, chunk + 1);
            convertStep(a0, codes4[2], scale4[2], scale4[3]);
            issue(a0, chunk + 2);
            convertStep(a1, codes4[3], scale4[2], scale4[3]);
            issue(a1, chunk + 3);
            if (more) {
#pragma unroll
                for (int i = 0; i < 4; ++i) { codes4[i] = next4[i]; scale4[i] = nextScale4[i]; }
                convertStep(a0, codes4[0], scale4[0], scale4[1]);
            }
        }
    }
    nk_wgmma_wait<0>();
    nk_wgmma_pin(acc);
    // D in row-major [2][64][256] per block (accumulator fragment: d[4i..4i+1] = D[16w+g][8i+2t..], d[4i+2..3] row g+8).
    float* d = out + ((size_t)blockIdx.x * 2 + group) * 64 * 256;
    const int t = lane % 4;
#pragma unroll
    for (int i = 0; i < 32; ++i) {
        *reinterpret_cast<float2*>(d + row0 * 256 + 8 * i + 2 * t) = make_float2(acc[4 * i], acc[4 * i + 1]);
        *reinterpret_cast<float2*>(d + row1 * 256 + 8 * i + 2 * t) = make_float2(acc[4 * i + 2], acc[4 * i + 3]);
    }
}

#define PROBE_ENTRY(MODE)                                                                                           \
    extern "C" __global__ void __launch_bounds__(256, 1)                                                            \
    w4_register_a_probe_mode##MODE(const u8* bTile, const u8* aTiles, const uint2* codes, const u16* scales,         \
                                   const u32* fragments, float* out, int steps) {                                   \
        probe<MODE>(bTile, aTiles, codes, scales, fragments, out, steps);                                            \
    }
PROBE_ENTRY(0)
PROBE_ENTRY(1)
PROBE_ENTRY(2)
PROBE_ENTRY(3)

extern "C" __global__ void __launch_bounds__(288, 1)
w4_register_a_probe_mode4(const u8* bTile, const u8* aTiles, const uint2* codes, const u16* scales, const u32* fragments,
                          float* out, int steps) {
    probe<4>(bTile, aTiles, codes, scales, fragments, out, steps);
}

#endif  // NK_HAS_WGMMA
