// w4a4_fp8_gemm.cu (prototype, not used by the engine): the skeleton of an own float8 GEMM for the fast W4A4 path,
// to measure what a TMA + wgmma kernel reaches at FLUX's shapes against cuBLASLt in the same run
// (scripts/w4a4_fused_gemm_bench.py --plain; H200: 0.6–0.8× of cuBLASLt, docs/hopper.md "Session 8"). Today's fast numerics: e4m3 activation codes with one scale per token,
// e4m3 folded weights with a per-channel unit:
//   y[m, n] = round16( Σ_k codes[m, k] · w[n, k] · scale[m] · c[n] + bias[n] )
// Block: 128 rows × BN columns; warpgroups 0 and 1 consume (64 rows each, wgmma m64nBNk32 straight into the fp32
// accumulators, one k-block's group kept in flight), warpgroup 2's thread 0 issues the tensor copies into a ring of
// `Stages` stages. `Blocks` CTAs per multiprocessor (2: one CTA's epilogue overlaps the other's main loop).
#include "prototype_tma.cuh"
#include "w4a4_fp8.cuh"

namespace {

constexpr int kRows = 128;
constexpr int kDepth = 128;  // e4m3 K values per stage (one 128-byte swizzled row)

#if defined(NK_HAS_WGMMA)

template <int BN, int Stages>
struct Plan {
    static constexpr u32 aBytes = kRows * kDepth;
    static constexpr u32 wBytes = BN * kDepth;
    static constexpr u32 a = 0;
    static constexpr u32 w = a + Stages * aBytes;
    static constexpr u32 full = w + Stages * wBytes;
    static constexpr u32 empty = full + Stages * 8;
    static constexpr u32 bytes = empty + Stages * 8;
    static_assert(bytes + 1024 <= 232448, "shared memory plan too large");
};

template <int BN, int Stages>
NK_DEVICE void produce(u32 base, const nk_tensor_map* aMap, const nk_tensor_map* wMap, int blocks, int row0, int col0) {
    using P = Plan<BN, Stages>;
    nk_prefetch_tensor_map(aMap);
    nk_prefetch_tensor_map(wMap);
    for (int block = 0; block < blocks; ++block) {
        const int stage = block % Stages;
        if (block >= Stages) nk_mbarrier_wait(base + P::empty + stage * 8, ((block / Stages) - 1) & 1);
        const u32 full = base + P::full + stage * 8;
        nk_mbarrier_arrive_expect_bytes(full, P::aBytes + P::wBytes);
        tensor_copy_2d(base + P::a + stage * P::aBytes, aMap, block * kDepth, row0, full);
        tensor_copy_2d(base + P::w + stage * P::wBytes, wMap, block * kDepth, col0, full);
    }
}

template <int BN, int Stages>
NK_DEVICE void consume(u32 base, const float* rowScale, const float* channelScale, const u16* bias, u16* y, int blocks,
                       int row0, int col0, int M, int N) {
    using P = Plan<BN, Stages>;
    const int group = threadIdx.x / 128, warp = (threadIdx.x / 32) & 3, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    float acc[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
    for (int block = 0; block < blocks; ++block) {
        const int stage = block % Stages;
        nk_mbarrier_wait(base + P::full + stage * 8, (block / Stages) & 1);
        const u32 aTile = base + P::a + stage * P::aBytes + group * 64 * 128;
        const u32 wTile = base + P::w + stage * P::wBytes;
        wgmma_e4m3_k128<BN>(acc, aTile, wTile, block > 0);
        nk_wgmma_commit();
        nk_wgmma_wait<1>();
        nk_wgmma_pin(acc);
        if (block > 0 && lane == 0) nk_mbarrier_arrive(base + P::empty + ((block - 1) % Stages) * 8);
    }
    nk_wgmma_wait<0>();
    nk_wgmma_pin(acc);
    const int r0 = row0 + group * 64 + warp * 16 + g, r1 = r0 + 8;
    const float s0 = r0 < M ? rowScale[r0] : 0.0f, s1 = r1 < M ? rowScale[r1] : 0.0f;
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) {
        const int col = col0 + 8 * i + 2 * t;
        const float2 c = *reinterpret_cast<const float2*>(channelScale + col);
        const float2 b = nk_unpack_bf16x2(*reinterpret_cast<const u32*>(bias + col));
        if (r0 < M) *reinterpret_cast<u32*>(y + (i64)r0 * N + col) = nk_pack_bf16x2(acc[4 * i] * s0 * c.x + b.x, acc[4 * i + 1] * s0 * c.y + b.y);
        if (r1 < M) *reinterpret_cast<u32*>(y + (i64)r1 * N + col) = nk_pack_bf16x2(acc[4 * i + 2] * s1 * c.x + b.x, acc[4 * i + 3] * s1 * c.y + b.y);
    }
}

template <int BN, int Stages, int ConsumerRegisters, int ProducerRegisters>
NK_DEVICE void fp8_gemm(const nk_tensor_map* aMap, const nk_tensor_map* wMap, const float* rowScale, const float* channelScale,
                        const u16* bias, u16* y, int M, int N, int K) {
    using P = Plan<BN, Stages>;
    extern __shared__ __align__(1024) u8 raw[];
    const u32 base = (nk_shared_address(raw) + 1023u) & ~1023u;
    init_ring(base + P::full, base + P::empty, Stages);
    const int blocks = K / kDepth, row0 = blockIdx.y * kRows, col0 = blockIdx.x * BN;
    // ConsumerRegisters 0: a producer warp instead of a warpgroup, and no register moves.
    if (threadIdx.x >= 256) {
        if constexpr (ConsumerRegisters > 0) nk_setmaxnreg_decrease<ProducerRegisters>();
        if (threadIdx.x == 256) produce<BN, Stages>(base, aMap, wMap, blocks, row0, col0);
    } else {
        if constexpr (ConsumerRegisters > 0) nk_setmaxnreg_increase<ConsumerRegisters>();
        consume<BN, Stages>(base, rowScale, channelScale, bias, y, blocks, row0, col0, M, N);
    }
}

#endif  // NK_HAS_WGMMA

}  // namespace

#define NK_GEMM_PARAMETERS const __grid_constant__ nk_tensor_map aMap, const __grid_constant__ nk_tensor_map wMap, \
    const float* rowScale, const float* channelScale, const u16* bias, u16* y, int M, int N, int K

// One CTA per multiprocessor: 168 registers at entry; the producer gives 128 × 128, the consumers take 256 × 64.
NK_KERNEL void __launch_bounds__(384, 1) w4a4_fp8_gemm_bf16_n256_s4_b1(NK_GEMM_PARAMETERS) {
#if defined(NK_HAS_WGMMA)
    fp8_gemm<256, 4, 232, 40>(&aMap, &wMap, rowScale, channelScale, bias, y, M, N, K);
#endif
}

NK_KERNEL void __launch_bounds__(384, 1) w4a4_fp8_gemm_bf16_n128_s6_b1(NK_GEMM_PARAMETERS) {
#if defined(NK_HAS_WGMMA)
    fp8_gemm<128, 6, 232, 40>(&aMap, &wMap, rowScale, channelScale, bias, y, M, N, K);
#endif
}

// Two CTAs per multiprocessor, 288 threads each (a producer warp): 112 registers per thread.
NK_KERNEL void __launch_bounds__(288, 2) w4a4_fp8_gemm_bf16_n128_s3_b2(NK_GEMM_PARAMETERS) {
#if defined(NK_HAS_WGMMA)
    fp8_gemm<128, 3, 0, 0>(&aMap, &wMap, rowScale, channelScale, bias, y, M, N, K);
#endif
}
