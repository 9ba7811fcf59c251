// attention_wgmma.cuh: Hopper (sm_90a) building blocks of attention_wgmma.cu: warpgroup MMA (wgmma) with float32
// accumulators for bf16/f16 and float8 e4m3 operands, shared-memory matrix descriptors for the 128-byte swizzled layout, mbarriers,
// named barriers and tensor copies (TMA). Everything but the tensor-map parameter type exists only when compiling for
// sm_90a (`NK_HAS_WGMMA`); other targets see none of it.
//
// Facts used (PTX ISA, "Asynchronous Warpgroup Level Matrix" sections):
//   - Descriptor (64 bits): start address >> 4 in bits 0-13, leading-dimension byte offset (LBO) >> 4 in 16-29,
//     stride-dimension byte offset (SBO) >> 4 in 32-45, base offset 0 (tiles 1024-byte aligned), swizzle mode in
//     62-63 (1 = 128-byte swizzle).
//   - 128-byte swizzle: in each 1024-byte block of eight 128-byte rows, the 16-byte chunk c of row r is stored at
//     chunk position c ^ r. K-major operand: rows are M/N indices, 64 16-bit K values per 128-byte row, 8-row groups
//     SBO apart (LBO unused); a K step of 16 inside the row is a +32-byte start address. MN-major operand (B
//     transposed): rows are K indices holding 64 N values; N blocks of 64 are LBO apart, 8-row K groups SBO apart.
//   - Accumulator fragment (m64nN, float32): warp w of the warpgroup holds rows 16w..16w+15; lane 4g + t holds,
//     for each 8-column block i, d[4i + 0..1] = D[16w + g][8i + 2t .. 2t+1] and d[4i + 2..3] = D[16w + g + 8][...].
//   - A operand from registers (m64nNk16, 16-bit): per warp the mma.sync m16n8k16 A layout of its 16 rows, so a
//     16-key slice of a float32 score accumulator becomes the A fragment of P·V without moving data between lanes.
//   - Tensor copies (TMA): `cp.async.bulk.tensor` reads a box of a tensor described by a 128-byte tensor map (made on
//     the host by cuTensorMapEncodeTiled, passed as a `__grid_constant__` kernel parameter) into shared memory,
//     zero-filling elements outside the tensor, and adds the bytes it wrote to an mbarrier's transaction count; the
//     phase completes once the expected bytes (`mbarrier.arrive.expect_tx`) have landed. With the 128-byte swizzle
//     a box row of 128 bytes lands exactly in the layout above (chunk c of row r at c ^ (r mod 8)) when the
//     destination is 1024-byte aligned. The writes belong to the async proxy, so wgmma reads them without a fence.
#pragma once
#include "ops_mma.cuh"

/// A CUDA tensor map (`CUtensorMap`: 128 opaque bytes, 64-byte aligned), passed by value as a kernel parameter.
struct alignas(64) nk_tensor_map {
    unsigned long long opaque[16];
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define NK_HAS_WGMMA 1

/// A shared-memory matrix descriptor with 128-byte swizzling; `address` is a 32-bit shared address.
NK_DEVICE u64 nk_wgmma_descriptor(u32 address, u32 leadingBytes, u32 strideBytes) {
    return (u64)((address >> 4) & 0x3FFFu) | ((u64)((leadingBytes >> 4) & 0x3FFFu) << 16) |
           ((u64)((strideBytes >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}

/// Orders this thread's register writes before the next wgmma reads them (accumulators or A fragments).
NK_DEVICE void nk_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }

/// Pins `N` accumulator registers at this point of the program, so the compiler moves no accumulator between a
/// wgmma's issue and its wait (which would force it to serialise the wgmma pipeline).
template <int N>
NK_DEVICE void nk_wgmma_pin(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

/// Closes the group of wgmma operations issued by this warpgroup since the last commit.
NK_DEVICE void nk_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }

/// Waits until at most `Pending` committed wgmma groups of this warpgroup are in flight.
template <int Pending>
NK_DEVICE void nk_wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(Pending) : "memory"); }

/// Synchronises the `threads` threads that use named barrier `id` (1..15; 0 is __syncthreads).
NK_DEVICE void nk_named_barrier(int id, int threads) { asm volatile("bar.sync %0, %1;" :: "r"(id), "r"(threads) : "memory"); }

/// Arrives at named barrier `id` without waiting (the other `threads` − arrivals wait there with bar.sync).
NK_DEVICE void nk_named_barrier_arrive(int id, int threads) {
    asm volatile("bar.arrive %0, %1;" :: "r"(id), "r"(threads) : "memory");
}

/// Lowers this warpgroup's registers per thread to `Count` (a multiple of 8), returning them to the block's pool.
template <int Count>
NK_DEVICE void nk_setmaxnreg_decrease() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" :: "n"(Count)); }

/// Raises this warpgroup's registers per thread to `Count`, waiting until the pool has them.
template <int Count>
NK_DEVICE void nk_setmaxnreg_increase() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" :: "n"(Count)); }

/// Initialises the mbarrier at shared `address` for `count` arrivals per phase.
NK_DEVICE void nk_mbarrier_init(u32 address, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(address), "r"(count) : "memory");
}

/// Makes this thread's mbarrier initialisations visible to the async proxy (tensor copies complete on them).
NK_DEVICE void nk_fence_mbarrier_init() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }

/// One arrival on the mbarrier that also expects `bytes` more bytes of tensor copies in the current phase.
NK_DEVICE void nk_mbarrier_arrive_expect_bytes(u32 address, u32 bytes) {
    asm volatile("{ .reg .b64 state; mbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1; }"
                 :: "r"(address), "r"(bytes) : "memory");
}

/// Fetches the tensor map at generic address `map` (a `__grid_constant__` parameter) into the TMA unit's cache.
NK_DEVICE void nk_prefetch_tensor_map(const nk_tensor_map* map) {
    asm volatile("prefetch.tensormap [%0];" :: "l"(reinterpret_cast<u64>(map)) : "memory");
}

/// Copies the box at element coordinates (c0, c1, c2, c3) (innermost first) of the 4-D tensor `map` describes into
/// shared memory at `destination`; the bytes complete on the mbarrier at `barrier`.
NK_DEVICE void nk_tensor_copy_4d(u32 destination, const nk_tensor_map* map, int c0, int c1, int c2, int c3, u32 barrier) {
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];"
                 :: "r"(destination), "l"(reinterpret_cast<u64>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(barrier)
                 : "memory");
}

/// One arrival on the mbarrier (release semantics for this thread's earlier memory accesses).
NK_DEVICE void nk_mbarrier_arrive(u32 address) {
    asm volatile("{ .reg .b64 state; mbarrier.arrive.shared::cta.b64 state, [%0]; }" :: "r"(address) : "memory");
}

/// Blocks until the mbarrier's phase with parity `parity` has completed.
NK_DEVICE void nk_mbarrier_wait(u32 address, u32 parity) {
    asm volatile(
        "{\n"
        ".reg .pred done;\n"
        "wait_loop:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra wait_loop;\n"
        "}\n" :: "r"(address), "r"(parity) : "memory");
}

#define NK_ACC8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
                   "+f"(d[i + 6]), "+f"(d[i + 7])
#define NK_ACC32 NK_ACC8(0), NK_ACC8(8), NK_ACC8(16), NK_ACC8(24)
#define NK_ACC64 NK_ACC32, NK_ACC8(32), NK_ACC8(40), NK_ACC8(48), NK_ACC8(56)
#define NK_REGS32 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, " \
                  "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define NK_REGS64 NK_REGS32 ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, " \
                  "%49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"

/// True for bf16 operands, false for f16 (selects the wgmma operand type).
template <class T> struct nk_wgmma_is_bf16 { static constexpr bool value = false; };
template <> struct nk_wgmma_is_bf16<nk_bf16> { static constexpr bool value = true; };

// The instruction text for one operand type; operands: 64 (or 32) accumulators, then A, B, the accumulate flag.
#define NK_WGMMA_SS_N128(TYPE)                                                                                      \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                     \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " {" NK_REGS64 "}, %64, %65, p, 1, 1, 0, 0;\n}\n" \
                 : NK_ACC64 : "l"(a), "l"(b), "r"(accumulate))
#define NK_WGMMA_RS_N128(TYPE)                                                                                      \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                                     \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " {" NK_REGS64 "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n" \
                 : NK_ACC64 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate))
#define NK_WGMMA_RS_N64(TYPE)                                                                                       \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                                     \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " {" NK_REGS32 "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n" \
                 : NK_ACC32 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate))

/// D (64×128, float32) = A·B, plus D when `accumulate` != 0; A (64×16) and B (16×128, stored N×K) K-major in
/// shared memory, described by `a` and `b`.
template <class T>
NK_DEVICE void nk_wgmma_ss_n128(float (&d)[64], u64 a, u64 b, int accumulate) {
    if constexpr (nk_wgmma_is_bf16<T>::value) {
        NK_WGMMA_SS_N128("bf16");
    } else {
        NK_WGMMA_SS_N128("f16");
    }
}

/// D (64×128, float32) = A·B, plus D when `accumulate` != 0; A (64×16, 16-bit) in registers (four per thread, the
/// mma.sync A layout per warp), B (16×128) MN-major (transposed) in shared memory, described by `b`.
template <class T>
NK_DEVICE void nk_wgmma_rs_n128(float (&d)[64], const u32 (&a)[4], u64 b, int accumulate) {
    if constexpr (nk_wgmma_is_bf16<T>::value) {
        NK_WGMMA_RS_N128("bf16");
    } else {
        NK_WGMMA_RS_N128("f16");
    }
}

/// As `nk_wgmma_rs_n128` for a 64×64 accumulator (head dimension 64).
template <class T>
NK_DEVICE void nk_wgmma_rs_n64(float (&d)[32], const u32 (&a)[4], u64 b, int accumulate) {
    if constexpr (nk_wgmma_is_bf16<T>::value) {
        NK_WGMMA_RS_N64("bf16");
    } else {
        NK_WGMMA_RS_N64("f16");
    }
}

/// D (64×128, float32) = A·B, plus D when `accumulate` != 0; A (64×32) and B (32×128, stored N×K) float8 e4m3,
/// K-major in shared memory (the only layout 8-bit wgmma operands have), described by `a` and `b`.
NK_DEVICE void nk_wgmma_ss_n128_e4m3(float (&d)[64], u64 a, u64 b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {" NK_REGS64 "}, %64, %65, p, 1, 1;\n}\n"
                 : NK_ACC64 : "l"(a), "l"(b), "r"(accumulate));
}

/// D (64×128, float32) = A·B, plus D when `accumulate` != 0; A (64×32, e4m3) in registers (four per thread: per warp
/// a0 = A[g][4t..4t+3], a1 = A[g+8][4t..4t+3], a2 = A[g][16+4t..], a3 = A[g+8][16+4t..], lowest column in the low
/// byte), B (32×128, stored N×K, e4m3) K-major in shared memory, described by `b`.
NK_DEVICE void nk_wgmma_rs_n128_e4m3(float (&d)[64], const u32 (&a)[4], u64 b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {" NK_REGS64 "}, {%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
                 : NK_ACC64 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL
