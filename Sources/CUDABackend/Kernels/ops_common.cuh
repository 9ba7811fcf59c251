// ops_common.cuh: shared helpers of the transformer-op, attention and GEMM kernels (ops_*.cu, attention_*.cu,
// gemm_*.cu): float16 conversions (the prelude has bfloat16 only), a type per 16-bit activation format so one
// kernel template serves bf16 and f16, 16-byte vector loads and stores, and warp/block sums.
#pragma once
#include "nunchaku_common.cuh"

// MARK: float16 (stored as its 16 raw bits)

/// The exact float value of IEEE half bits.
NK_DEVICE float nk_f16_to_float(u16 bits) {
    float value;
    asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
    return value;
}

/// `value` rounded to IEEE half (nearest even; overflow gives infinity).
NK_DEVICE u16 nk_float_to_f16(float value) {
    u16 bits;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(value));
    return bits;
}

/// Two floats rounded to half and packed, `low` in bits 0-15.
NK_DEVICE u32 nk_pack_f16x2(float low, float high) {
    u32 packed;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(high), "f"(low));
    return packed;
}

// MARK: one type per activation format

/// bfloat16 activations: conversions used by the kernel templates.
struct nk_bf16 {
    static NK_DEVICE float to_float(u16 bits) { return nk_bf16_to_float(bits); }
    static NK_DEVICE u16 from_float(float value) { return nk_float_to_bf16(value); }
    static NK_DEVICE u32 pack2(float low, float high) { return nk_pack_bf16x2(low, high); }
    static NK_DEVICE float2 unpack2(u32 packed) { return nk_unpack_bf16x2(packed); }
};

/// float16 activations: conversions used by the kernel templates.
struct nk_f16 {
    static NK_DEVICE float to_float(u16 bits) { return nk_f16_to_float(bits); }
    static NK_DEVICE u16 from_float(float value) { return nk_float_to_f16(value); }
    static NK_DEVICE u32 pack2(float low, float high) { return nk_pack_f16x2(low, high); }
    static NK_DEVICE float2 unpack2(u32 packed) {
        return make_float2(nk_f16_to_float((u16)(packed & 0xFFFFu)), nk_f16_to_float((u16)(packed >> 16)));
    }
};

// MARK: vectors of eight 16-bit values (16 bytes)

/// Eight values from a 16-byte aligned address.
template <class T>
NK_DEVICE void nk_load8(const u16* address, float (&values)[8]) {
    const uint4 packed = *reinterpret_cast<const uint4*>(address);
    const u32 words[4] = {packed.x, packed.y, packed.z, packed.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 pair = T::unpack2(words[i]);
        values[2 * i] = pair.x;
        values[2 * i + 1] = pair.y;
    }
}

/// Eight values rounded to T and packed as 16 bytes (the first value in bits 0-15 of `.x`).
template <class T>
NK_DEVICE uint4 nk_pack8(const float (&values)[8]) {
    return make_uint4(T::pack2(values[0], values[1]), T::pack2(values[2], values[3]), T::pack2(values[4], values[5]),
                      T::pack2(values[6], values[7]));
}

/// Eight values rounded and stored to a 16-byte aligned address.
template <class T>
NK_DEVICE void nk_store8(u16* address, const float (&values)[8]) {
    *reinterpret_cast<uint4*>(address) = nk_pack8<T>(values);
}

/// Eight floats from a 16-byte aligned address (two float4 loads).
NK_DEVICE void nk_load8_f32(const float* address, float (&values)[8]) {
    const float4 low = reinterpret_cast<const float4*>(address)[0];
    const float4 high = reinterpret_cast<const float4*>(address)[1];
    values[0] = low.x; values[1] = low.y; values[2] = low.z; values[3] = low.w;
    values[4] = high.x; values[5] = high.y; values[6] = high.z; values[7] = high.w;
}

// MARK: reductions

/// The sum of `value` over the 32 lanes of the warp, in every lane.
NK_DEVICE float nk_warp_sum(float value) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xFFFFFFFFu, value, offset);
    return value;
}

/// The sum of `value` over the block, in every thread. `scratch` holds 32 floats of shared memory; every thread of
/// the block must call this (it synchronises twice), and the block size must be a multiple of 32.
NK_DEVICE float nk_block_sum(float value, float* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    value = nk_warp_sum(value);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    value = lane < warps ? scratch[lane] : 0.0f;
    return nk_warp_sum(value);
}
