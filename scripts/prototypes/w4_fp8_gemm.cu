// w4_fp8_gemm.cu (prototype, not used by the engine): a W4A4 fast-path GEMM that reads the 4-bit weights itself.
// No per-forward weight expansion and no e4m3 weight scratch: each k-step's weights become wgmma's A operand in
// registers, converted from their 4-bit codes (w4_register_a_probe.cu, mode 4); the low-rank branch comes from the
// tokens' low-rank codes, as 32 more columns of the activations. Checked and timed by scripts/w4_fp8_gemm_bench.py; docs/hopper.md, "Session 14".
//
// Swapped operands: the output channels are wgmma's M (64 per consumer warpgroup, 128 per tile), the tokens its N
// (BN per tile), so each converted weight serves BN tokens.
//   y[m, n] = round_bf16( u[n] · sx[m] · Σ_k e4m3(f16((q[n,k] − 8) · s'[n, k/64])) · xc[m, k]
//                         + su[n] · sl[m] · Σ_r upc[n, r] · lc[m, r] + bias[n] )
// with xc the tokens' e4m3 codes (scale sx per token), s' = s · f / u the group scale relative to the channel's unit
// u (f16), upc the e4m3 codes of proj_up (scale su per channel) and lc those of the tokens' low-rank values
// l = t · (smooth ⊙ proj_down) (scale sl per token). The low-rank branch is one more k-step after the main ones, once
// the main sum has been brought to its units (consume(); mma.sync in the epilogue cost 3 µs per tile, and the step run
// first made the fast accumulation lose ten times more: the tensor cores add each k-step's products at the
// accumulator's exponent, truncated, and the low-rank sum is often the larger part).
//
// Operands in global memory:
//   - x: [rows][K + 128] e4m3 codes, read by a tensor map (box 128 bytes × BN rows, 128-byte swizzle): the K columns
//     of xc, then lc in columns K…K + 31 and zeros;
//   - weights: per channel tile and 128-deep k-block one 8704-byte chunk, brought by one bulk copy: the codes
//     [warpgroup][step][thread][2 words] (the fragment order of w4_register_a_probe.cu), then the f16 scales s'
//     [warpgroup][row][2 groups];
//   - upFragments: per channel tile [warpgroup][thread] the 16 bytes of the thread's proj_up fragment;
//   - tokenPre, tokenFinal: per token sx/sl and sl (1 and sx where the low-rank codes are zero), padded with zeros to
//     a multiple of BN, brought with the low-rank codes by bulk copies; channelPre, channelFinal: per channel u/su and
//     su (1 and u where proj_up's codes are zero); bias; all fp32;
//   - y: [rows][N] bf16, written by tensor stores (box 64 channels × BN rows, 128-byte swizzle) from a staging tile
//     per warpgroup, filled by stmatrix.trans (each 8 × 8 block of the accumulator is stored transposed).
// Block: warpgroup 0 produces (thread 0 issues the copies into a ring of `Stages` stages), warpgroups 1 and 2
// consume. Persistent: `gridDim.x` blocks walk the tiles (channel tile fastest) and the producer runs ahead across
// tiles, so a tile's epilogue overlaps the next tile's copies. Requires N % 128 == 0, K % 128 == 0, the per-token
// vectors padded to a multiple of BN.
#include "w4_convert.cuh"
#include "w4_fp8_wgmma_rs.cuh"

#if defined(NK_HAS_WGMMA)

namespace {

constexpr int kChannels = 128;
constexpr u32 kCodeBytes = 2 * 4 * 128 * 8, kScaleBytes = 2 * 64 * 2 * 2, kWeightChunk = kCodeBytes + kScaleBytes;

template <int BN, int Stages>
struct Plan {
    static constexpr u32 xBytes = BN * 128;
    static constexpr u32 stageBytes = (xBytes + kWeightChunk + 1023) / 1024 * 1024;
    static constexpr u32 out = Stages * stageBytes;  // one [BN][64 channels] bf16 staging tile per consumer warpgroup
    static constexpr u32 outBytes = BN * 128;
    static constexpr u32 full = out + 2 * outBytes;
    static constexpr u32 empty = full + Stages * 8;
    static constexpr u32 bytes = empty + Stages * 8;
    static_assert(bytes + 1024 <= 232448, "shared memory plan too large");
};

/// The A fragment of one k-step from its two code words and the f16 scales of rows g and g + 8.
NK_DEVICE void convert_step(u32 (&a)[4], uint2 codes, u16 s0, u16 s1) {
    const u32 low0 = s0 | ((u32)s0 << 16), low1 = s1 | ((u32)s1 << 16);
    const u32 high0 = mul2(low0, 0x2C002C00u), high1 = mul2(low1, 0x2C002C00u);  // · 1/16
    a[0] = convert4(codes.x, low0, high0);
    a[1] = convert4(codes.x >> 8, low1, high1);
    a[2] = convert4(codes.y, low0, high0);
    a[3] = convert4(codes.y >> 8, low1, high1);
}

/// One k-block's codes (four steps) and scales (rows g, g + 8 of groups 0 and 1) of this thread, from a stage.
struct BlockCodes {
    uint2 codes[4];
    u16 scales[4];
};

NK_DEVICE void load_block(BlockCodes& b, u32 stageWeights, int group, int thread, int row0) {
    const u32 codes = stageWeights + group * 4 * 128 * 8 + thread * 8;
    const u32 scales = stageWeights + kCodeBytes + group * 64 * 4;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];" : "=r"(b.codes[i].x), "=r"(b.codes[i].y) : "r"(codes + i * 128 * 8));
    }
    const u32 rows[4] = {scales + row0 * 4, scales + (row0 + 8) * 4, scales + row0 * 4 + 2, scales + (row0 + 8) * 4 + 2};
#pragma unroll
    for (int i = 0; i < 4; ++i) asm volatile("ld.shared.u16 %0, [%1];" : "=h"(b.scales[i]) : "r"(rows[i]));
}

template <int BN>
NK_DEVICE void issue(float (&acc)[BN / 2], const u32 (&a)[4], u32 bTile, int accumulate) {
    nk_wgmma_fence();
    wgmma_rs<BN>(acc, a, nk_wgmma_descriptor(bTile, 16, 1024), accumulate);
    nk_wgmma_commit();
    nk_wgmma_wait<1>();
    nk_wgmma_pin(acc);
}

NK_DEVICE void tensor_store_2d(const nk_tensor_map* map, int c0, int c1, u32 source) {
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];"
                 :: "l"(reinterpret_cast<u64>(map)), "r"(c0), "r"(c1), "r"(source) : "memory");
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}

NK_DEVICE void wait_stores_read() { asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory"); }

/// Timing variants (results wrong on purpose, to see what limits the kernel): 1 skips the conversion (the code words
/// are used as e4m3 bytes), 2 copies the activation tile only for the low-rank block, 4 copies no weights, 8 leaves out
/// the low-rank step.
constexpr int kFixedWeights = 1, kNoActivationCopies = 2, kNoWeightCopies = 4, kNoLowRank = 8;

template <int Variant>
NK_DEVICE void prepare(u32 (&a)[4], uint2 codes, u16 s0, u16 s1) {
    if constexpr (Variant & kFixedWeights) {
        a[0] = codes.x; a[1] = codes.y; a[2] = codes.x ^ s0; a[3] = codes.y ^ s1;
    } else {
        convert_step(a, codes, s0, s1);
    }
}

template <int BN, int Stages, int Variant>
NK_DEVICE void produce(u32 base, const nk_tensor_map* xMap, const u8* weights, const float* tokenPre,
                       const float* tokenFinal, int channelTiles, int tiles, int kBlocks) {
    using P = Plan<BN, Stages>;
    nk_prefetch_tensor_map(xMap);
    u32 it = 0;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const int channelTile = tile % channelTiles, token0 = tile / channelTiles * BN;
        for (int block = 0; block <= kBlocks; ++block, ++it) {  // block kBlocks: the low-rank codes and the scales
            const int stage = it % Stages;
            if (it >= Stages) nk_mbarrier_wait(base + P::empty + stage * 8, ((it / Stages) - 1) & 1);
            const u32 full = base + P::full + stage * 8, stageBase = base + stage * P::stageBytes;
            const bool lowRank = block == kBlocks;
            const bool copiesX = lowRank || !(Variant & kNoActivationCopies);
            const bool copiesW = !lowRank && !(Variant & kNoWeightCopies);
            nk_mbarrier_arrive_expect_bytes(full, (copiesX ? P::xBytes : 0) + (copiesW ? kWeightChunk : 0) + (lowRank ? 8 * BN : 0));
            if (copiesX) tensor_copy_2d(stageBase, xMap, block * 128, token0, full);
            if (copiesW) {
                bulk_copy(stageBase + P::xBytes, weights + ((size_t)channelTile * kBlocks + block) * kWeightChunk, kWeightChunk, full);
            }
            if (lowRank) {
                bulk_copy(stageBase + P::xBytes, tokenPre + token0, 4 * BN, full);
                bulk_copy(stageBase + P::xBytes + 4 * BN, tokenFinal + token0, 4 * BN, full);
            }
        }
    }
}

template <int BN, int Stages, int Variant>
NK_DEVICE void consume(u32 base, int group, const uint4* upFragments, const float* channelPre, const float* channelFinal,
                       const float* bias, const nk_tensor_map* yMap, int channelTiles, int tiles, int kBlocks) {
    using P = Plan<BN, Stages>;
    const int thread = threadIdx.x % 128, warp = thread / 32, lane = thread % 32, g = lane / 4, t = lane % 4;
    const int row0 = 16 * warp + g;
    const u32 outTile = base + P::out + group * P::outBytes;
    const auto stageOf = [&](u32 it) { return base + (it % Stages) * P::stageBytes; };
    const auto waitFull = [&](u32 it) { nk_mbarrier_wait(base + P::full + (it % Stages) * 8, (it / Stages) & 1); };
    const auto release = [&](u32 it) {
        __syncwarp();
        if (lane == 0) nk_mbarrier_arrive(base + P::empty + (it % Stages) * 8);
    };
    u32 it = 0;
    float acc[BN / 2];
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const int channelTile = tile % channelTiles, token0 = tile / channelTiles * BN;
        const int c0 = channelTile * kChannels + group * 64 + row0, c1 = c0 + 8;
        // The main k-blocks. Each step's fragment is converted two steps ahead, so a wgmma is issued as soon as the
        // previous one is queued (four fragment buffers: after step j's wgmma is issued and step j − 1's has
        // completed, step j + 2 is converted into the buffer step j − 2 used). Block b + 1's codes are read from
        // its stage while block b's second wgmma runs; block b − 1's stage is released once all its wgmmas are done.
        BlockCodes current, next;
        u32 f0[4], f1[4], f2[4], f3[4];
        waitFull(it);
        load_block(current, stageOf(it) + P::xBytes, group, thread, row0);
        prepare<Variant>(f0, current.codes[0], current.scales[0], current.scales[1]);
        prepare<Variant>(f1, current.codes[1], current.scales[0], current.scales[1]);
        for (int block = 0; block < kBlocks; ++block) {
            const u32 x = stageOf(it + block);
            const bool more = block + 1 < kBlocks;
            issue<BN>(acc, f0, x, block > 0);
            if (block > 0) release(it + block - 1);
            prepare<Variant>(f2, current.codes[2], current.scales[2], current.scales[3]);
            issue<BN>(acc, f1, x + 32, 1);
            if (more) {
                waitFull(it + block + 1);
                load_block(next, stageOf(it + block + 1) + P::xBytes, group, thread, row0);
            }
            prepare<Variant>(f3, current.codes[3], current.scales[2], current.scales[3]);
            issue<BN>(acc, f2, x + 64, 1);
            if (more) prepare<Variant>(f0, next.codes[0], next.scales[0], next.scales[1]);
            issue<BN>(acc, f3, x + 96, 1);
            if (more) {
                prepare<Variant>(f1, next.codes[1], next.scales[0], next.scales[1]);
                current = next;
            }
        }
        nk_wgmma_wait<0>();
        nk_wgmma_pin(acc);
        release(it + kBlocks - 1);
        it += kBlocks;
        // The low-rank step. acc holds the main sum in units of sx · u; it is brought to the low-rank sum's units
        // sl · su (× tokenPre = sx/sl per token, × channelPre = u/su per channel), the low-rank k-step is added, and the
        // epilogue scales by tokenFinal = sl and channelFinal = su. A token or channel whose low-rank codes are all
        // zero has pre 1 and keeps its final sx (u); the producers keep every factor within 2^±40.
        const uint4 up = upFragments[(channelTile * 2 + group) * 128 + thread];
        const u32 upA[4] = {up.x, up.y, up.z, up.w};
        const float pre0 = channelPre[c0], pre1 = channelPre[c1], final0 = channelFinal[c0], final1 = channelFinal[c1];
        const float b0 = bias[c0], b1 = bias[c1];
        waitFull(it);
        const u32 lowRank = stageOf(it), tokenPre = lowRank + P::xBytes, tokenFinal = tokenPre + 4 * BN;
        if constexpr (!(Variant & kNoLowRank)) {
#pragma unroll
            for (int i = 0; i < BN / 8; ++i) {
                float2 p;
                asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(p.x), "=f"(p.y) : "r"(tokenPre + (8 * i + 2 * t) * 4));
                acc[4 * i] *= p.x * pre0;
                acc[4 * i + 1] *= p.y * pre0;
                acc[4 * i + 2] *= p.x * pre1;
                acc[4 * i + 3] *= p.y * pre1;
            }
            nk_wgmma_fence();
            wgmma_rs<BN>(acc, upA, nk_wgmma_descriptor(lowRank, 16, 1024), 1);
            nk_wgmma_commit();
            nk_wgmma_wait<0>();
            nk_wgmma_pin(acc);
        }
        // Epilogue: y = acc · tokenFinal · channelFinal + bias in bf16, out through the staging tile (128-byte swizzle)
        // and a tensor store.
        if (thread == 0) wait_stores_read();  // the previous tile's store has read the staging tile
        nk_named_barrier(1 + group, 128);
        const int matrix = lane / 8, r = lane % 8;
        const u32 chunk = 2 * warp + (matrix & 1);  // 16-byte chunk (8 channels) of this lane's row
#pragma unroll
        for (int i = 0; i < BN / 8; i += 2) {
            u32 p[4];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                float2 f;
                asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(f.x), "=f"(f.y) : "r"(tokenFinal + (8 * (i + h) + 2 * t) * 4));
                const float* a = acc + 4 * (i + h);
                p[2 * h] = nk_pack_bf16x2(fmaf(a[0] * f.x, final0, b0), fmaf(a[1] * f.y, final0, b0));
                p[2 * h + 1] = nk_pack_bf16x2(fmaf(a[2] * f.x, final1, b1), fmaf(a[3] * f.y, final1, b1));
            }
            const int token = 8 * (i + (matrix >> 1)) + r;
            const u32 address = outTile + token * 128 + ((chunk ^ r) * 16);
            asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};"
                         :: "r"(address), "r"(p[0]), "r"(p[1]), "r"(p[2]), "r"(p[3]) : "memory");
        }
        release(it++);
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        nk_named_barrier(1 + group, 128);
        if (thread == 0) tensor_store_2d(yMap, channelTile * kChannels + group * 64, token0, outTile);
    }
    if (thread == 0) asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}

template <int BN, int Stages, int ConsumerRegisters, int Variant>
NK_DEVICE void w4_fp8_gemm(const nk_tensor_map* xMap, const nk_tensor_map* yMap, const u8* weights, const uint4* upFragments,
                           const float* tokenPre, const float* tokenFinal, const float* channelPre,
                           const float* channelFinal, const float* bias, int M, int N, int K) {
    using P = Plan<BN, Stages>;
    extern __shared__ __align__(1024) u8 raw[];
    const u32 base = (nk_shared_address(raw) + 1023u) & ~1023u;
    init_ring(base + P::full, base + P::empty, Stages);
    const int channelTiles = N / kChannels, tiles = channelTiles * ((M + BN - 1) / BN), kBlocks = K / 128;
    if (threadIdx.x < 128) {
        if constexpr (ConsumerRegisters > 0) nk_setmaxnreg_decrease<40>();
        if (threadIdx.x == 0) produce<BN, Stages, Variant>(base, xMap, weights, tokenPre, tokenFinal, channelTiles, tiles, kBlocks);
    } else {
        if constexpr (ConsumerRegisters > 0) nk_setmaxnreg_increase<ConsumerRegisters>();
        consume<BN, Stages, Variant>(base, threadIdx.x / 128 - 1, upFragments, channelPre, channelFinal, bias, yMap, channelTiles,
                                     tiles, kBlocks);
    }
}

}  // namespace

#endif  // NK_HAS_WGMMA

#define NK_W4_GEMM_PARAMETERS const __grid_constant__ nk_tensor_map xMap, const __grid_constant__ nk_tensor_map yMap, \
    const u8* weights, const uint4* upFragments, const float* tokenPre, const float* tokenFinal,                       \
    const float* channelPre, const float* channelFinal, const float* bias, int M, int N, int K
#define NK_W4_GEMM_ENTRY(BN, STAGES, REGISTERS, VARIANT)                                                              \
    NK_KERNEL void __launch_bounds__(384, 1) w4_fp8_gemm_n##BN##_s##STAGES##_r##REGISTERS##_v##VARIANT(NK_W4_GEMM_PARAMETERS) { \
        NK_W4_GEMM_BODY(BN, STAGES, REGISTERS, VARIANT)                                                                 \
    }
#if defined(NK_HAS_WGMMA)
#define NK_W4_GEMM_BODY(BN, STAGES, REGISTERS, VARIANT)                                                               \
    w4_fp8_gemm<BN, STAGES, REGISTERS, VARIANT>(&xMap, &yMap, weights, upFragments, tokenPre, tokenFinal, channelPre, \
                                                channelFinal, bias, M, N, K);
#else
#define NK_W4_GEMM_BODY(BN, STAGES, REGISTERS, VARIANT)
#endif

NK_W4_GEMM_ENTRY(128, 6, 0, 0)
NK_W4_GEMM_ENTRY(192, 5, 0, 0)
NK_W4_GEMM_ENTRY(240, 3, 232, 0)
NK_W4_GEMM_ENTRY(240, 4, 232, 0)
NK_W4_GEMM_ENTRY(256, 3, 232, 0)
NK_W4_GEMM_ENTRY(256, 3, 232, 1)
NK_W4_GEMM_ENTRY(256, 3, 232, 2)
NK_W4_GEMM_ENTRY(256, 3, 232, 6)
NK_W4_GEMM_ENTRY(256, 3, 232, 8)
