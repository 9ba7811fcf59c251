// conv_im2col.cu: the data movement of the VAE decoder's convolutions on channels-last bf16 feature maps
// [H, W, C] (C a multiple of 8, moved in 16-byte units):
// - im2col3x3: for pixels first…first+count−1 (row-major), patch row r = [x(y−1, x−1), x(y−1, x), …, x(y+1, x+1)],
//   nine pixels of C channels each, zeros outside the image (padding 1). With the weight permuted to
//   [out, ky, kx, in], the 3×3 convolution of the band is one GEMM: patches [count, 9C] · weightᵀ.
// - upsample2x: nearest-neighbour ×2, out[2H, 2W, C] with out(y, x) = in(y/2, x/2).
#include "nunchaku_common.cuh"

NK_KERNEL void nunchaku_conv_im2col3x3_bf16(const u16* input, u16* patches, int height, int width, int channels,
                                            i64 firstPixel, i64 count) {
    const int units = channels / 8;
    const i64 total = count * 9 * units;
    for (i64 index = nk_global_thread_index(); index < total; index += nk_grid_thread_count()) {
        const int unit = (int)(index % units);
        const int tap = (int)((index / units) % 9);
        const i64 row = index / (9 * units);
        const i64 pixel = firstPixel + row;
        const int y = (int)(pixel / width) + tap / 3 - 1;
        const int x = (int)(pixel % width) + tap % 3 - 1;
        uint4 value = make_uint4(0u, 0u, 0u, 0u);
        if (y >= 0 && y < height && x >= 0 && x < width) {
            value = *reinterpret_cast<const uint4*>(input + ((i64)y * width + x) * channels + unit * 8);
        }
        *reinterpret_cast<uint4*>(patches + index * 8) = value;
    }
}

NK_KERNEL void nunchaku_conv_upsample2x_bf16(const u16* input, u16* output, int height, int width, int channels) {
    const int units = channels / 8;
    const i64 total = (i64)4 * height * width * units;
    for (i64 index = nk_global_thread_index(); index < total; index += nk_grid_thread_count()) {
        const int unit = (int)(index % units);
        const i64 pixel = index / units;
        const int x = (int)(pixel % (2 * width));
        const int y = (int)(pixel / (2 * width));
        *reinterpret_cast<uint4*>(output + index * 8) =
            *reinterpret_cast<const uint4*>(input + ((i64)(y / 2) * width + x / 2) * channels + unit * 8);
    }
}
