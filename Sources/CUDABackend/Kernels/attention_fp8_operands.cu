// attention_fp8_operands.cu: the operands of the float8 attention kernel (attention_wgmma.cu, `…_fp8_…` entry
// points) from the 16-bit joint heads q, k, v [B, S, H, 128] (bf16 or f16), in two passes:
//   1. `…_amax`: per (part, sample, head) and chunk of 64 tokens the largest |x| → partial [3][B][H][chunks];
//   2. `…_codes`: each block reduces its (part, sample, head)'s partials to amax, then writes codes
//      e4m3(x · (448 / amax)) (IEEE division, nearest-even, saturating; amax = 0 gives zero codes) and the scale
//      amax / 448 (float32 [3][B][H], q, k, v; written by the chunk-0 block). q and k codes keep their layout
//      [B, S, H, 128]; v codes are transposed to [B, H, 128, Spad] (Spad = S rounded up to 16, keys past S zero) with
//      each group of 16 keys permuted: key 8h + 2t + b (h, b ∈ {0, 1}, t < 4) is stored at position 4t + 2h + b, the
//      order in which the attention kernel's P registers hold the keys (`AttentionFP8Reference` on the CPU).
// Grid of both passes: (chunks, H, 3·B) with blockIdx.z = 3·sample + part; 256 threads. The quantization uses the
// same operations as the CPU reference, so codes and scales are bit-identical to it.
// `…_value_codes`: only the v codes, for heads written by ops_qkv_heads.cu's `…_fp8_…` entry points (q and k codes
// already written with fixed factors, v in 16 bits with its per-(sample, head) max |v| beside it): grid
// (chunks, H, B); the chunk-0 blocks also write all three scales.
#include "ops_common.cuh"
#include "w4a4_fp8.cuh"

namespace {

constexpr int kHeadDim = 128;
constexpr int kChunkTokens = 64;
constexpr int kThreads = 256;
constexpr int kLoadsPerRow = kHeadDim / 8;  // 16-byte loads of eight values

/// The part (0 q, 1 k, 2 v), sample and head of this block, and the index of its (part, sample, head) in [3][B][H].
struct FP8Block {
    int part;
    int sample;
    int head;
    int pair;

    NK_DEVICE FP8Block() {
        const int batch = gridDim.z / 3;
        part = blockIdx.z % 3;
        sample = blockIdx.z / 3;
        head = blockIdx.y;
        pair = (part * batch + sample) * gridDim.y + head;
    }
};

/// The maximum of `value` over the block, in every thread.
NK_DEVICE float block_max(float value) {
    __shared__ float scratch[kThreads / 32];
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xFFFFFFFFu, value, offset));
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = value;
    __syncthreads();
    value = scratch[0];
#pragma unroll
    for (int warp = 1; warp < kThreads / 32; ++warp) value = fmaxf(value, scratch[warp]);
    return value;
}

/// Element offset of (sample, token, head) in a [B, S, H, 128] tensor.
NK_DEVICE i64 row_offset(int sample, int token, int head, int tokens, int heads) {
    return (((i64)sample * tokens + token) * heads + head) * kHeadDim;
}

/// The v codes of one (sample, head) and chunk of 64 keys (blockIdx.x): e4m3(v · factor) transposed to
/// [B, H, 128, Spad] with the keys of each group of 16 permuted. The chunk's 64 keys × 128 go into shared memory
/// (keys past S as zeros; rows padded by one word so that the column reads below fall into different banks), then
/// one 128-position row per head dimension, four codes per word. Every thread of the block calls it.
template <class T>
NK_DEVICE void value_codes(const u16* __restrict__ v, float factor, u8* __restrict__ valueCodes, int sample, int head,
                           int heads, int tokens, int paddedTokens) {
    constexpr int kRowWords = kHeadDim / 2 + 1;
    __shared__ u32 tile[kChunkTokens * kRowWords];
    for (int i = threadIdx.x; i < kChunkTokens * kLoadsPerRow; i += kThreads) {
        const int key = i / kLoadsPerRow, column = i % kLoadsPerRow;
        const int token = blockIdx.x * kChunkTokens + key;
        uint4 packed = make_uint4(0u, 0u, 0u, 0u);
        if (token < tokens) {
            packed = *reinterpret_cast<const uint4*>(v + row_offset(sample, token, head, tokens, heads) + column * 8);
        }
        u32* row = tile + key * kRowWords + column * 4;
        row[0] = packed.x;
        row[1] = packed.y;
        row[2] = packed.z;
        row[3] = packed.w;
    }
    __syncthreads();
    const u16* values = reinterpret_cast<const u16*>(tile);
    u8* destination = valueCodes + ((i64)sample * heads + head) * kHeadDim * paddedTokens;
    constexpr int kWordsPerRow = kChunkTokens / 4;
    for (int i = threadIdx.x; i < kHeadDim * kWordsPerRow; i += kThreads) {
        const int dimension = i / kWordsPerRow, firstPosition = (i % kWordsPerRow) * 4;
        const int position = blockIdx.x * kChunkTokens + firstPosition;
        if (position >= paddedTokens) continue;
        float t[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            // The key stored at position p of its group: 8·((p >> 1) & 1) + 2·(p >> 2) + (p & 1).
            const int p = (firstPosition + j) & 15;
            const int key = ((firstPosition + j) & ~15) + ((p >> 1) & 1) * 8 + (p >> 2) * 2 + (p & 1);
            t[j] = T::to_float(values[key * kRowWords * 2 + dimension]) * factor;
        }
        *reinterpret_cast<u32*>(destination + (i64)dimension * paddedTokens + position) =
            nk_e4m3_pack4(t[0], t[1], t[2], t[3]);
    }
}

template <class T>
NK_DEVICE void fp8_amax(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,
                        float* __restrict__ partial, int tokens) {
    const FP8Block b;
    const u16* x = b.part == 0 ? q : b.part == 1 ? k : v;
    float amax = 0.0f;
    for (int i = threadIdx.x; i < kChunkTokens * kLoadsPerRow; i += kThreads) {
        const int token = blockIdx.x * kChunkTokens + i / kLoadsPerRow;
        if (token >= tokens) break;
        float values[8];
        nk_load8<T>(x + row_offset(b.sample, token, b.head, tokens, gridDim.y) + (i % kLoadsPerRow) * 8, values);
#pragma unroll
        for (int c = 0; c < 8; ++c) amax = fmaxf(amax, fabsf(values[c]));
    }
    amax = block_max(amax);
    if (threadIdx.x == 0) partial[(i64)b.pair * gridDim.x + blockIdx.x] = amax;
}

template <class T>
NK_DEVICE void fp8_codes(const u16* __restrict__ q, const u16* __restrict__ k, const u16* __restrict__ v,
                         const float* __restrict__ partial, u8* __restrict__ queryCodes, u8* __restrict__ keyCodes,
                         u8* __restrict__ valueCodes, float* __restrict__ scales, int tokens, int paddedTokens) {
    const FP8Block b;
    const int heads = gridDim.y;
    float amax = 0.0f;
    for (int chunk = threadIdx.x; chunk < (int)gridDim.x; chunk += kThreads) {
        amax = fmaxf(amax, partial[(i64)b.pair * gridDim.x + chunk]);
    }
    amax = block_max(amax);
    const float factor = amax > 0.0f ? 448.0f / amax : 0.0f;
    if (blockIdx.x == 0 && threadIdx.x == 0) scales[b.pair] = amax / 448.0f;

    if (b.part == 2) {
        value_codes<T>(v, factor, valueCodes, b.sample, b.head, heads, tokens, paddedTokens);
        return;
    }
    const u16* x = b.part == 0 ? q : k;
    u8* codes = b.part == 0 ? queryCodes : keyCodes;
    for (int i = threadIdx.x; i < kChunkTokens * kLoadsPerRow; i += kThreads) {
        const int token = blockIdx.x * kChunkTokens + i / kLoadsPerRow;
        if (token >= tokens) break;
        const i64 offset = row_offset(b.sample, token, b.head, tokens, heads) + (i % kLoadsPerRow) * 8;
        float t[8];
        nk_load8<T>(x + offset, t);
        *reinterpret_cast<uint2*>(codes + offset) =
            make_uint2(nk_e4m3_pack4(t[0] * factor, t[1] * factor, t[2] * factor, t[3] * factor),
                       nk_e4m3_pack4(t[4] * factor, t[5] * factor, t[6] * factor, t[7] * factor));
    }
}

template <class T>
NK_DEVICE void fp8_value_codes(const u16* __restrict__ v, const u32* __restrict__ valueMaxima, int maximaStride,
                               u8* __restrict__ valueCodes, float* __restrict__ scales, int tokens, int paddedTokens,
                               float queryScale, float keyScale) {
    const int sample = blockIdx.z, head = blockIdx.y, heads = gridDim.y;
    const int pair = sample * heads + head, pairs = gridDim.z * heads;
    const float amax = __uint_as_float(valueMaxima[(i64)pair * maximaStride]);
    const float factor = amax > 0.0f ? 448.0f / amax : 0.0f;
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        scales[pair] = queryScale;
        scales[pairs + pair] = keyScale;
        scales[2 * pairs + pair] = amax / 448.0f;
    }
    value_codes<T>(v, factor, valueCodes, sample, head, heads, tokens, paddedTokens);
}

}  // namespace

// q, k, v [B, S, H, 128]; partial float32 [3][B][H][chunks] with chunks = gridDim.x = ceil(S / 64).
NK_KERNEL void __launch_bounds__(kThreads) nunchaku_attention_fp8_amax_bf16(const u16* q, const u16* k, const u16* v,
                                                                           float* partial, int tokens) {
    fp8_amax<nk_bf16>(q, k, v, partial, tokens);
}

NK_KERNEL void __launch_bounds__(kThreads) nunchaku_attention_fp8_amax_f16(const u16* q, const u16* k, const u16* v,
                                                                          float* partial, int tokens) {
    fp8_amax<nk_f16>(q, k, v, partial, tokens);
}

// As above, plus the codes (q and k [B, S, H, 128], v [B, H, 128, Spad]), the scales float32 [3][B][H], S and
// Spad; grid (ceil(Spad / 64), H, 3·B) (Spad ≥ S, so this also covers every chunk of the first pass).
NK_KERNEL void __launch_bounds__(kThreads) nunchaku_attention_fp8_codes_bf16(
    const u16* q, const u16* k, const u16* v, const float* partial, u8* queryCodes, u8* keyCodes, u8* valueCodes,
    float* scales, int tokens, int paddedTokens) {
    fp8_codes<nk_bf16>(q, k, v, partial, queryCodes, keyCodes, valueCodes, scales, tokens, paddedTokens);
}

NK_KERNEL void __launch_bounds__(kThreads) nunchaku_attention_fp8_codes_f16(
    const u16* q, const u16* k, const u16* v, const float* partial, u8* queryCodes, u8* keyCodes, u8* valueCodes,
    float* scales, int tokens, int paddedTokens) {
    fp8_codes<nk_f16>(q, k, v, partial, queryCodes, keyCodes, valueCodes, scales, tokens, paddedTokens);
}

// v [B, S, H, 128]; valueMaxima: the float bits of max |v| per (sample, head) at (sample · H + head) · maximaStride;
// v codes [B, H, 128, Spad]; scales float32 [3][B][H] (q and k: queryScale, keyScale everywhere); S, Spad; grid
// (ceil(Spad / 64), H, B).
NK_KERNEL void __launch_bounds__(kThreads) nunchaku_attention_fp8_value_codes_bf16(
    const u16* v, const u32* valueMaxima, int maximaStride, u8* valueCodes, float* scales, int tokens, int paddedTokens,
    float queryScale, float keyScale) {
    fp8_value_codes<nk_bf16>(v, valueMaxima, maximaStride, valueCodes, scales, tokens, paddedTokens, queryScale, keyScale);
}

NK_KERNEL void __launch_bounds__(kThreads) nunchaku_attention_fp8_value_codes_f16(
    const u16* v, const u32* valueMaxima, int maximaStride, u8* valueCodes, float* scales, int tokens, int paddedTokens,
    float queryScale, float keyScale) {
    fp8_value_codes<nk_f16>(v, valueMaxima, maximaStride, valueCodes, scales, tokens, paddedTokens, queryScale, keyScale);
}
