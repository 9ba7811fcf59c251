// nunchaku_common.cuh: the prelude every swift-nunchaku kernel includes.
//
// NVRTC compiles our kernels at run time with no CUDA toolkit headers on the search path (NVRTC 13.0 has no
// built-in cuda_bf16.h / cuda_fp16.h / <cstdint>), so this header defines the few integer types and
// half-precision helpers the kernels need, using inline PTX for the conversions the hardware has.
// It is embedded in the binary and handed to nvrtcCreateProgram under the name "nunchaku_common.cuh".
#pragma once

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "swift-nunchaku kernels need sm_80 or newer (bf16 conversions, 4-bit and 8-bit tensor cores)"
#endif

typedef signed char i8;
typedef unsigned char u8;
typedef short i16;
typedef unsigned short u16;
typedef int i32;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

static_assert(sizeof(u16) == 2 && sizeof(u32) == 4 && sizeof(i64) == 8, "unexpected integer sizes");

/// A device function the compiler should inline.
#define NK_DEVICE __device__ __forceinline__
/// A kernel entry point with an unmangled name, so the host looks it up by its plain name.
#define NK_KERNEL extern "C" __global__

// MARK: bfloat16 (stored as its 16 raw bits)

/// The exact float value of bfloat16 bits.
NK_DEVICE float nk_bf16_to_float(u16 bits) { return __uint_as_float(((u32)bits) << 16); }

/// `value` rounded to bfloat16 (nearest even; NaN stays NaN, overflow gives infinity).
NK_DEVICE u16 nk_float_to_bf16(float value) {
    u16 bits;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(value));
    return bits;
}

/// Two floats rounded to bfloat16 and packed, `low` in bits 0-15 and `high` in bits 16-31.
NK_DEVICE u32 nk_pack_bf16x2(float low, float high) {
    u32 packed;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(packed) : "f"(high), "f"(low));
    return packed;
}

/// The two floats of packed bfloat16 bits (`low` from bits 0-15).
NK_DEVICE float2 nk_unpack_bf16x2(u32 packed) {
    return make_float2(__uint_as_float(packed << 16), __uint_as_float(packed & 0xFFFF0000u));
}

// MARK: indexing

/// This thread's index in a one-dimensional grid.
NK_DEVICE i64 nk_global_thread_index() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }

/// The number of threads in a one-dimensional grid (the step of a grid-stride loop).
NK_DEVICE i64 nk_grid_thread_count() { return (i64)gridDim.x * blockDim.x; }
