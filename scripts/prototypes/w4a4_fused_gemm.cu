// w4a4_fused_gemm.cu (prototype, not used by the engine): one W4A4 fast-path GEMM that reads the 16-bit activations
// itself and quantizes them to float8 e4m3 inside the kernel, per token and 128-column block of K, so the separate
// quantize pass goes away. scripts/w4a4_fused_gemm_bench.py checks it against a PyTorch reference and times it
// (H200: correct, 0.36–0.51× cuBLAS BF16: the conversion, repeated per N tile, is issue-bound; docs/hopper.md "Session 8").
//
// y[m, n] = round16( Σ_b scale[m, b] · Σ_{k in b} codes[m, k] · w[n, k]  ·  c[n] + bias[n] )
//   t[m, k]      = round_bf16(x[m, k] · inverseSmooth[k])            (one bf16x2 multiply)
//   amax[m, b]   = max_{k in b} |t[m, k]|,  scale[m, b] = amax / 448
//   codes[m, k]  = e4m3(t[m, k] · (448 / amax[m, b]))                (0 where amax is 0)
//   w            = the layer's folded e4m3 weights [N, K] (w4a4_fp8_weights.cu), c its per-channel unit.
//
// Block: 128 rows × BN columns, three warpgroups.
//   - Warpgroup 2 converts: its thread 0 also issues the tensor copies (TMA) of each 128-column k-block — x as two
//     boxes of 128 rows × 64 bf16, w as one box of BN rows × 128 bytes — into a ring of `kStages` stages. Each of its
//     128 threads then takes one row of the k-block: smooth, amax, codes into a two-slot ring of e4m3 A tiles (the
//     128-byte swizzled K-major layout wgmma reads), its scale into the slot's scale row.
//   - Warpgroups 0 and 1 consume, 64 rows each: per k-block four wgmma m64nBNk32 into a block accumulator, then the
//     promotion acc += part · scale[row] in fp32 (so every k-block's sum is scaled exactly once, DeepGEMM's scheme).
//   Epilogue: acc · c[n] + bias[n], rounded to bf16, stored from registers.
#include "prototype_tma.cuh"
#include "w4a4_fp8.cuh"

namespace {

constexpr int kRows = 128;
constexpr int kDepth = 128;  // K columns per k-block (one scale each)
constexpr int kThreads = 384;

#if defined(NK_HAS_WGMMA)

template <int BN, int Stages>
struct Plan {
    static constexpr u32 xBytes = kRows * kDepth * 2;          // two boxes of [128][64] bf16
    static constexpr u32 wBytes = BN * kDepth;                 // [BN][128] e4m3
    static constexpr u32 aBytes = kRows * kDepth;              // [128][128] e4m3
    static constexpr u32 x = 0;
    static constexpr u32 w = x + Stages * xBytes;
    static constexpr u32 a = w + Stages * wBytes;
    static constexpr u32 scales = a + 2 * aBytes;              // [2][128] float
    static constexpr u32 full = scales + 2 * kRows * 4;        // [Stages] mbarriers: x and w of a k-block landed
    static constexpr u32 empty = full + Stages * 8;            // [Stages]: read by the converters and both consumers
    static constexpr u32 aFull = empty + Stages * 8;           // [2]: A slot written
    static constexpr u32 aEmpty = aFull + 2 * 8;               // [2]: A slot read
    static constexpr u32 bytes = aEmpty + 2 * 8;
    static_assert(bytes + 1024 <= 232448, "shared memory plan too large");
};

NK_DEVICE void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

NK_DEVICE u32 mul_bf16x2(u32 a, u32 b) {
    u32 d;
    asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
}

/// The larger magnitude of each half (the sign is meaningless: only |result| is used).
NK_DEVICE u32 max_abs_bf16x2(u32 a, u32 b) {
    u32 d;
    asm("max.xorsign.abs.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
}

NK_DEVICE u32 e4m3x4(u32 pairLow, u32 pairHigh, float r) {
    const float2 p = nk_unpack_bf16x2(pairLow), q = nk_unpack_bf16x2(pairHigh);
    return nk_e4m3x2(p.x * r, p.y * r) | (nk_e4m3x2(q.x * r, q.y * r) << 16);
}

/// The k-block's tensor copies into its stage (thread 0 of the converters).
template <int BN, int Stages>
NK_DEVICE void load_block(u32 base, const nk_tensor_map* xMap, const nk_tensor_map* wMap, int block, int row0, int col0) {
    using P = Plan<BN, Stages>;
    const int stage = block % Stages;
    const u32 full = base + P::full + stage * 8;
    nk_mbarrier_arrive_expect_bytes(full, P::xBytes + P::wBytes);
    const u32 x = base + P::x + stage * P::xBytes;
    tensor_copy_2d(x, xMap, block * kDepth, row0, full);
    tensor_copy_2d(x + P::xBytes / 2, xMap, block * kDepth + 64, row0, full);
    tensor_copy_2d(base + P::w + stage * P::wBytes, wMap, block * kDepth, col0, full);
}

template <int BN, int Stages>
NK_DEVICE void convert(u32 base, u8* shared, const nk_tensor_map* xMap, const nk_tensor_map* wMap, const u16* inverseSmooth,
                       int blocks, int row0, int col0) {
    using P = Plan<BN, Stages>;
    const int row = threadIdx.x - 256;
    const bool producer = row == 0;
    if (producer) {
        nk_prefetch_tensor_map(xMap);
        nk_prefetch_tensor_map(wMap);
        for (int b = 0; b < Stages && b < blocks; ++b) load_block<BN, Stages>(base, xMap, wMap, b, row0, col0);
    }
    for (int block = 0; block < blocks; ++block) {
        const int stage = block % Stages, slot = block & 1;
        nk_mbarrier_wait(base + P::full + stage * 8, (block / Stages) & 1);
        const u8* x = shared + P::x + stage * P::xBytes + row * 128;
        const uint4* smooth = reinterpret_cast<const uint4*>(inverseSmooth + block * kDepth);
        u32 t[64];
        u32 peak = 0;
#pragma unroll
        for (int chunk = 0; chunk < 16; ++chunk) {  // 8 bf16 per chunk; box chunk / 8, 16-byte unit chunk % 8
            const uint4 v = *reinterpret_cast<const uint4*>(x + (chunk >> 3) * (P::xBytes / 2) + (((chunk & 7) ^ (row & 7)) << 4));
            const uint4 s = __ldg(smooth + chunk);
            t[4 * chunk + 0] = mul_bf16x2(v.x, s.x);
            t[4 * chunk + 1] = mul_bf16x2(v.y, s.y);
            t[4 * chunk + 2] = mul_bf16x2(v.z, s.z);
            t[4 * chunk + 3] = mul_bf16x2(v.w, s.w);
#pragma unroll
            for (int i = 0; i < 4; ++i) peak = max_abs_bf16x2(peak, t[4 * chunk + i]);
        }
        __syncwarp();
        if ((threadIdx.x & 31) == 0) nk_mbarrier_arrive(base + P::empty + stage * 8);  // x read (the stage's w is the consumers')
        const float2 halves = nk_unpack_bf16x2(peak & 0x7FFF7FFFu);
        const float amax = fmaxf(halves.x, halves.y);
        const float r = amax > 0.0f ? W4A4_FP8_MAX / amax : 0.0f;
        if (block >= 2) nk_mbarrier_wait(base + P::aEmpty + slot * 8, ((block >> 1) - 1) & 1);
        u8* a = shared + P::a + slot * P::aBytes + row * 128;
#pragma unroll
        for (int chunk = 0; chunk < 8; ++chunk) {  // 16 codes per 16-byte unit
            uint4 codes;
            codes.x = e4m3x4(t[8 * chunk + 0], t[8 * chunk + 1], r);
            codes.y = e4m3x4(t[8 * chunk + 2], t[8 * chunk + 3], r);
            codes.z = e4m3x4(t[8 * chunk + 4], t[8 * chunk + 5], r);
            codes.w = e4m3x4(t[8 * chunk + 6], t[8 * chunk + 7], r);
            *reinterpret_cast<uint4*>(a + ((chunk ^ (row & 7)) << 4)) = codes;
        }
        reinterpret_cast<float*>(shared + P::scales)[slot * kRows + row] = amax / W4A4_FP8_MAX;
        fence_proxy_async();
        __syncwarp();
        if ((threadIdx.x & 31) == 0) nk_mbarrier_arrive(base + P::aFull + slot * 8);
        // Refill the stage of the block before this one (its consumers are most likely done with it by now).
        const int refill = block - 1 + Stages;
        if (producer && block >= 1 && refill < blocks) {
            nk_mbarrier_wait(base + P::empty + ((block - 1) % Stages) * 8, ((block - 1) / Stages) & 1);
            load_block<BN, Stages>(base, xMap, wMap, refill, row0, col0);
        }
    }
}

template <int BN, int Stages>
NK_DEVICE void consume(u32 base, u8* shared, const float* channelScale, const u16* bias, u16* y, int blocks, int row0,
                       int col0, int M, int N) {
    using P = Plan<BN, Stages>;
    const int group = threadIdx.x / 128, warp = (threadIdx.x / 32) & 3, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int localRow = group * 64 + warp * 16 + g;
    float acc[BN / 2], part[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
    for (int block = 0; block < blocks; ++block) {
        const int stage = block % Stages, slot = block & 1;
        nk_mbarrier_wait(base + P::full + stage * 8, (block / Stages) & 1);
        nk_mbarrier_wait(base + P::aFull + slot * 8, (block >> 1) & 1);
        const u32 aTile = base + P::a + slot * P::aBytes + group * 64 * 128;
        const u32 wTile = base + P::w + stage * P::wBytes;
        wgmma_e4m3_k128<BN>(part, aTile, wTile, false);
        nk_wgmma_commit();
        nk_wgmma_wait<0>();
        nk_wgmma_pin(part);
        const float* scales = reinterpret_cast<const float*>(shared + P::scales) + slot * kRows;
        const float s0 = scales[localRow], s1 = scales[localRow + 8];
        __syncwarp();
        if (lane == 0) {
            nk_mbarrier_arrive(base + P::empty + stage * 8);
            nk_mbarrier_arrive(base + P::aEmpty + slot * 8);
        }
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
            acc[4 * i + 0] += part[4 * i + 0] * s0;
            acc[4 * i + 1] += part[4 * i + 1] * s0;
            acc[4 * i + 2] += part[4 * i + 2] * s1;
            acc[4 * i + 3] += part[4 * i + 3] * s1;
        }
    }
    const int r0 = row0 + localRow, r1 = r0 + 8;
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) {
        const int col = col0 + 8 * i + 2 * t;
        const float2 c = *reinterpret_cast<const float2*>(channelScale + col);
        const float2 b = nk_unpack_bf16x2(*reinterpret_cast<const u32*>(bias + col));
        if (r0 < M) *reinterpret_cast<u32*>(y + (i64)r0 * N + col) = nk_pack_bf16x2(acc[4 * i] * c.x + b.x, acc[4 * i + 1] * c.y + b.y);
        if (r1 < M) *reinterpret_cast<u32*>(y + (i64)r1 * N + col) = nk_pack_bf16x2(acc[4 * i + 2] * c.x + b.x, acc[4 * i + 3] * c.y + b.y);
    }
}

template <int BN, int Stages>
NK_DEVICE void fused_gemm(const nk_tensor_map* xMap, const nk_tensor_map* wMap, const u16* inverseSmooth, const float* channelScale,
                          const u16* bias, u16* y, int M, int N, int K) {
    using P = Plan<BN, Stages>;
    extern __shared__ __align__(1024) u8 raw[];
    u8* shared = reinterpret_cast<u8*>((reinterpret_cast<u64>(raw) + 1023) & ~u64(1023));
    const u32 base = nk_shared_address(shared);
    if (threadIdx.x == 0) {
        for (int s = 0; s < Stages; ++s) {
            nk_mbarrier_init(base + P::full + s * 8, 1);
            nk_mbarrier_init(base + P::empty + s * 8, 12);  // 4 converter warps + 8 consumer warps
        }
        for (int s = 0; s < 2; ++s) {
            nk_mbarrier_init(base + P::aFull + s * 8, 4);
            nk_mbarrier_init(base + P::aEmpty + s * 8, 8);
        }
        nk_fence_mbarrier_init();
    }
    __syncthreads();
    const int blocks = K / kDepth, row0 = blockIdx.y * kRows, col0 = blockIdx.x * BN;
    if (threadIdx.x >= 256) {
        convert<BN, Stages>(base, shared, xMap, wMap, inverseSmooth, blocks, row0, col0);
    } else {
        consume<BN, Stages>(base, shared, channelScale, bias, y, blocks, row0, col0, M, N);
    }
}

#endif  // NK_HAS_WGMMA

}  // namespace

#define NK_FUSED_PARAMETERS const __grid_constant__ nk_tensor_map xMap, const __grid_constant__ nk_tensor_map wMap, \
    const u16* inverseSmooth, const float* channelScale, const u16* bias, u16* y, int M, int N, int K

NK_KERNEL void __launch_bounds__(kThreads, 1) w4a4_fused_gemm_bf16_n128_s4(NK_FUSED_PARAMETERS) {
#if defined(NK_HAS_WGMMA)
    fused_gemm<128, 4>(&xMap, &wMap, inverseSmooth, channelScale, bias, y, M, N, K);
#endif
}

NK_KERNEL void __launch_bounds__(kThreads, 1) w4a4_fused_gemm_bf16_n128_s3(NK_FUSED_PARAMETERS) {
#if defined(NK_HAS_WGMMA)
    fused_gemm<128, 3>(&xMap, &wMap, inverseSmooth, channelScale, bias, y, M, N, K);
#endif
}
