// ops_mma.cuh: tensor-core and asynchronous-copy building blocks of attention_*.cu and gemm_*.cu (sm_80+):
// mma.sync m16n8k16 with float32 accumulators for bf16 and f16 operands, ldmatrix, and cp.async with zero fill.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with 16-bit A/B): lane = 4·g + t (g = lane / 4, t = lane % 4).
//   A (16×16, row-major), four 32-bit registers of two values: a0 = A[g][2t..2t+1], a1 = A[g+8][2t..2t+1],
//     a2 = A[g][2t+8..2t+9], a3 = A[g+8][2t+8..2t+9].
//   B (16×8, "col": element B[k][n]), two registers: b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g].
//   C/D (16×8 float32), four values: c0, c1 = C[g][2t..2t+1], c2, c3 = C[g+8][2t..2t+1].
#pragma once
#include "ops_common.cuh"

/// D += A·B for one m16n8k16 tile; `T` (nk_bf16 or nk_f16) names the operand format.
template <class T>
NK_DEVICE void nk_mma_16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1);

template <>
NK_DEVICE void nk_mma_16816<nk_bf16>(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <>
NK_DEVICE void nk_mma_16816<nk_f16>(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// `nk_mma_16816` for a 16-bit type that says `is_bf16` (w4a4_half.cuh's NKBFloat16 / NKFloat16).
template <class T>
NK_DEVICE void nk_mma_16816_half(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    if (T::is_bf16) nk_mma_16816<nk_bf16>(d, a, b0, b1);
    else nk_mma_16816<nk_f16>(d, a, b0, b1);
}

/// The shared-memory address (32-bit, as ldmatrix and cp.async take it) of a generic pointer into shared memory.
NK_DEVICE u32 nk_shared_address(const void* pointer) {
    u32 address;
    asm("{ .reg .u64 wide; cvta.to.shared.u64 wide, %1; cvt.u32.u64 %0, wide; }" : "=r"(address) : "l"(pointer));
    return address;
}

/// Four 8×8 matrices of 16-bit values: lanes 8m..8m+7 give the row addresses (16 bytes each) of matrix m, and
/// register m of lane 4·g + t receives row g, columns 2t..2t+1 of matrix m.
NK_DEVICE void nk_ldmatrix_x4(u32 (&r)[4], const u16* rowAddress) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(nk_shared_address(rowAddress)) : "memory");
}

/// As `nk_ldmatrix_x4`, transposed: register m of lane 4·g + t receives rows 2t..2t+1 of column g of matrix m.
NK_DEVICE void nk_ldmatrix_x4_trans(u32 (&r)[4], const u16* rowAddress) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(nk_shared_address(rowAddress)) : "memory");
}

/// Starts copying 16 bytes from global to shared memory; when `valid` is false the 16 shared bytes are zeroed
/// and nothing is read (`source` must still be a valid address).
NK_DEVICE void nk_cp_async_16(void* destination, const void* source, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                 :: "r"(nk_shared_address(destination)), "l"(source), "r"(valid ? 16 : 0) : "memory");
}

/// Closes the group of cp.async copies started by this thread since the last commit.
NK_DEVICE void nk_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }

/// Waits until at most `Pending` of this thread's committed groups are still in flight.
template <int Pending>
NK_DEVICE void nk_cp_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(Pending) : "memory"); }
