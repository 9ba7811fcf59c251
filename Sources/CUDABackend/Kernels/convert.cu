// convert.cu: element type conversions between float32 and bfloat16.
//
// Grid-stride loops over groups of four elements (16-byte float loads, 8-byte bfloat16 stores), then a
// scalar tail. Pointers must be 16-byte aligned (device allocations are); `count` may be any size.
#include "nunchaku_common.cuh"

/// output[i] = bf16(input[i]), rounded to nearest even.
NK_KERNEL void nunchaku_convert_f32_to_bf16(const float* __restrict__ input, u16* __restrict__ output, i64 count) {
    const i64 groups = count / 4;
    const float4* input4 = reinterpret_cast<const float4*>(input);
    uint2* output4 = reinterpret_cast<uint2*>(output);
    for (i64 group = nk_global_thread_index(); group < groups; group += nk_grid_thread_count()) {
        const float4 x = input4[group];
        output4[group] = make_uint2(nk_pack_bf16x2(x.x, x.y), nk_pack_bf16x2(x.z, x.w));
    }
    for (i64 index = groups * 4 + nk_global_thread_index(); index < count; index += nk_grid_thread_count()) {
        output[index] = nk_float_to_bf16(input[index]);
    }
}

/// output[i] = float(input[i]), exact.
NK_KERNEL void nunchaku_convert_bf16_to_f32(const u16* __restrict__ input, float* __restrict__ output, i64 count) {
    const i64 groups = count / 4;
    const uint2* input4 = reinterpret_cast<const uint2*>(input);
    float4* output4 = reinterpret_cast<float4*>(output);
    for (i64 group = nk_global_thread_index(); group < groups; group += nk_grid_thread_count()) {
        const uint2 packed = input4[group];
        const float2 low = nk_unpack_bf16x2(packed.x);
        const float2 high = nk_unpack_bf16x2(packed.y);
        output4[group] = make_float4(low.x, low.y, high.x, high.y);
    }
    for (i64 index = groups * 4 + nk_global_thread_index(); index < count; index += nk_grid_thread_count()) {
        output[index] = nk_bf16_to_float(input[index]);
    }
}
