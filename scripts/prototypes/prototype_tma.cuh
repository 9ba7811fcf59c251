// prototype_tma.cuh: what the prototypes in this folder add to attention_wgmma.cuh: 2-D tensor copies and plain bulk
// copies (both completing on an mbarrier), e4m3 wgmma with 128- and 256-column accumulators.
#pragma once
#include "attention_wgmma.cuh"

#if defined(NK_HAS_WGMMA)

/// Copies the box at element coordinates (c0, c1) (innermost first) of the 2-D tensor `map` describes into shared
/// memory at `destination`; the bytes complete on the mbarrier at `barrier`.
NK_DEVICE void tensor_copy_2d(u32 destination, const nk_tensor_map* map, int c0, int c1, u32 barrier) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
                 :: "r"(destination), "l"(reinterpret_cast<u64>(map)), "r"(c0), "r"(c1), "r"(barrier) : "memory");
}

/// Copies `bytes` (a multiple of 16, both addresses 16-byte aligned) from global memory into shared memory at
/// `destination`; the bytes complete on the mbarrier at `barrier`.
NK_DEVICE void bulk_copy(u32 destination, const void* source, u32 bytes, u32 barrier) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 :: "r"(destination), "l"(reinterpret_cast<u64>(source)), "r"(bytes), "r"(barrier) : "memory");
}

/// Thread 0 makes a ring's mbarriers (each `stages` × 8 bytes at `full` and `empty`: the producer's one arrival, the
/// consumers' eight warps), then the block waits for them.
NK_DEVICE void init_ring(u32 full, u32 empty, int stages) {
    if (threadIdx.x == 0) {
        for (int s = 0; s < stages; ++s) {
            nk_mbarrier_init(full + s * 8, 1);
            nk_mbarrier_init(empty + s * 8, 8);
        }
        nk_fence_mbarrier_init();
    }
    __syncthreads();
}

#define R8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define R32(i) R8(i), R8(i + 8), R8(i + 16), R8(i + 24)
#define WGMMA_REGS_128                                                                                              \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "  \
    "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "   \
    "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, "   \
    "%68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, "   \
    "%90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, "  \
    "%110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"

/// D (64×256, fp32) += A (64×32 e4m3) · B (32×256 e4m3, stored N×K), both K-major in shared memory.
NK_DEVICE void wgmma_n256_e4m3(float (&d)[128], u64 a, u64 b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k32.f32.e4m3.e4m3 {" WGMMA_REGS_128 "}, %128, %129, p, 1, 1;\n}\n"
                 : R32(0), R32(32), R32(64), R32(96) : "l"(a), "l"(b), "r"(accumulate));
}

/// D (64×BN, fp32) = A·B (+ D when `accumulate` != 0), e4m3 operands K-major in shared memory.
template <int BN>
NK_DEVICE void wgmma_e4m3(float (&d)[BN / 2], u64 a, u64 b, int accumulate);
template <>
NK_DEVICE void wgmma_e4m3<128>(float (&d)[64], u64 a, u64 b, int accumulate) { nk_wgmma_ss_n128_e4m3(d, a, b, accumulate); }
template <>
NK_DEVICE void wgmma_e4m3<256>(float (&d)[128], u64 a, u64 b, int accumulate) { wgmma_n256_e4m3(d, a, b, accumulate); }

/// One 128-deep k-block: four wgmma m64nBNk32 over A [64 rows][128 B] at `aTile` and B [BN rows][128 B] at `bTile`
/// (both 128-byte swizzled); the first accumulates into D only when `accumulateFirst`.
template <int BN>
NK_DEVICE void wgmma_e4m3_k128(float (&d)[BN / 2], u32 aTile, u32 bTile, bool accumulateFirst) {
    nk_wgmma_fence();
#pragma unroll
    for (int step = 0; step < 4; ++step) {
        wgmma_e4m3<BN>(d, nk_wgmma_descriptor(aTile + step * 32, 16, 1024), nk_wgmma_descriptor(bTile + step * 32, 16, 1024),
                       accumulateFirst || step > 0);
    }
}

#endif  // NK_HAS_WGMMA
