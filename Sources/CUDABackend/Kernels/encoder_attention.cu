// encoder_attention.cu: softmax(scale·Q·Kᵀ + bias)·V for the text encoders (CLIP: causal mask; T5: relative
// position bias, no scaling) and the VAE mid block (one head of 512 channels over H·W tokens), in float32 on bf16
// inputs, rounded once on store.
//
// Inputs are one fused projection output `qkv` [B, S, rowStride]: the query of token s, head h starts at
// `(b·S + s)·rowStride + h·headDim`, its key `keyOffset` elements later and its value `valueOffset` later. The
// output is [B, S, H·headDim]. `bias` (optional) is float32 [H, 2S − 1]: entry (h, j − i + S − 1) is added to the
// score of query i and key j (T5's bias depends on the distance only).
//
// A block of 4 warps owns 16 queries of one (sample, head), 4 per warp. Keys and values pass through shared memory
// in tiles of 32 (one key per lane); scores, the online softmax (running max and sum per query) and the output
// accumulators are float32; lane l keeps output dimensions l, l + 32, … of its warp's queries in registers, so
// the head dimension is at most 32·CHUNKS. Key rows are padded by one 32-bit word, so the lanes' reads of
// different rows fall in different banks. The head dimension must be even (pairs are read as 32-bit words).
#include "ops_common.cuh"

namespace {

constexpr int kWarps = 4;
constexpr int kQueriesPerWarp = 4;
constexpr int kQueriesPerBlock = kWarps * kQueriesPerWarp;
constexpr int kKeysPerTile = 32;

/// −∞ (NVRTC has no math header defining INFINITY).
NK_DEVICE float negative_infinity() { return __int_as_float(0xFF800000); }

template <int CHUNKS>
NK_DEVICE void encoder_attention(const u16* __restrict__ qkv, u16* __restrict__ out, const float* __restrict__ bias,
                                 int tokens, int heads, int headDim, i64 rowStride, i64 keyOffset, i64 valueOffset,
                                 float scale, int causal) {
    extern __shared__ u32 shared[];
    const int paddedWords = headDim / 2 + 1;
    u32* queryTile = shared;                                     // [16][paddedWords]
    u32* keyTile = queryTile + kQueriesPerBlock * paddedWords;   // [32][paddedWords]
    u16* valueTile = reinterpret_cast<u16*>(keyTile + kKeysPerTile * paddedWords);  // [32][headDim]

    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int head = blockIdx.y;
    const int sample = blockIdx.z;
    const int firstQuery = blockIdx.x * kQueriesPerBlock;
    const int pairs = headDim / 2;
    const u16* base = qkv + (i64)sample * tokens * rowStride + (i64)head * headDim;

    for (int index = threadIdx.x; index < kQueriesPerBlock * pairs; index += blockDim.x) {
        const int row = index / pairs, pair = index % pairs;
        const int query = firstQuery + row;
        queryTile[row * paddedWords + pair] =
            query < tokens ? *reinterpret_cast<const u32*>(base + (i64)query * rowStride + 2 * pair) : 0u;
    }

    float maximum[kQueriesPerWarp], total[kQueriesPerWarp], accumulator[kQueriesPerWarp][CHUNKS];
#pragma unroll
    for (int i = 0; i < kQueriesPerWarp; ++i) {
        maximum[i] = negative_infinity();
        total[i] = 0.0f;
#pragma unroll
        for (int c = 0; c < CHUNKS; ++c) accumulator[i][c] = 0.0f;
    }

    const int lastQuery = min(tokens, firstQuery + kQueriesPerBlock) - 1;
    const int keyEnd = causal ? lastQuery + 1 : tokens;
    const int biasRow = 2 * tokens - 1;
    for (int firstKey = 0; firstKey < keyEnd; firstKey += kKeysPerTile) {
        __syncthreads();  // the previous tile is no longer read
        for (int index = threadIdx.x; index < kKeysPerTile * pairs; index += blockDim.x) {
            const int row = index / pairs, pair = index % pairs;
            const int key = firstKey + row;
            u32 keyWord = 0u, valueWord = 0u;
            if (key < tokens) {
                const u16* source = base + (i64)key * rowStride + 2 * pair;
                keyWord = *reinterpret_cast<const u32*>(source + keyOffset);
                valueWord = *reinterpret_cast<const u32*>(source + valueOffset);
            }
            keyTile[row * paddedWords + pair] = keyWord;
            reinterpret_cast<u32*>(valueTile)[row * pairs + pair] = valueWord;
        }
        __syncthreads();

        const int key = firstKey + lane;
        float dots[kQueriesPerWarp];
#pragma unroll
        for (int i = 0; i < kQueriesPerWarp; ++i) dots[i] = 0.0f;
        const u32* keyRow = keyTile + lane * paddedWords;
        for (int pair = 0; pair < pairs; ++pair) {
            const float2 k = nk_unpack_bf16x2(keyRow[pair]);
#pragma unroll
            for (int i = 0; i < kQueriesPerWarp; ++i) {
                const float2 q = nk_unpack_bf16x2(queryTile[(warp * kQueriesPerWarp + i) * paddedWords + pair]);
                dots[i] = fmaf(q.x, k.x, fmaf(q.y, k.y, dots[i]));
            }
        }

#pragma unroll
        for (int i = 0; i < kQueriesPerWarp; ++i) {
            const int query = firstQuery + warp * kQueriesPerWarp + i;
            if (query >= tokens) continue;  // warp-uniform
            const bool visible = key < tokens && !(causal && key > query);
            float score = negative_infinity();
            if (visible) {
                score = dots[i] * scale;
                if (bias) score += bias[(i64)head * biasRow + (key - query + tokens - 1)];
            }
            float tileMaximum = score;
#pragma unroll
            for (int offset = 16; offset > 0; offset >>= 1)
                tileMaximum = fmaxf(tileMaximum, __shfl_xor_sync(0xFFFFFFFFu, tileMaximum, offset));
            const float newMaximum = fmaxf(maximum[i], tileMaximum);
            if (newMaximum == negative_infinity()) continue;  // nothing visible yet (warp-uniform)
            const float rescale = maximum[i] == negative_infinity() ? 0.0f : expf(maximum[i] - newMaximum);
            const float weight = visible ? expf(score - newMaximum) : 0.0f;
            total[i] = total[i] * rescale + nk_warp_sum(weight);
            maximum[i] = newMaximum;
#pragma unroll
            for (int c = 0; c < CHUNKS; ++c) accumulator[i][c] *= rescale;
            for (int j = 0; j < kKeysPerTile; ++j) {
                const float p = __shfl_sync(0xFFFFFFFFu, weight, j);
#pragma unroll
                for (int c = 0; c < CHUNKS; ++c) {
                    const int dimension = lane + 32 * c;
                    if (dimension < headDim) accumulator[i][c] = fmaf(p, nk_bf16_to_float(valueTile[j * headDim + dimension]), accumulator[i][c]);
                }
            }
        }
    }

    const int width = heads * headDim;
#pragma unroll
    for (int i = 0; i < kQueriesPerWarp; ++i) {
        const int query = firstQuery + warp * kQueriesPerWarp + i;
        if (query >= tokens) continue;
        const float inverse = 1.0f / total[i];
        u16* row = out + ((i64)sample * tokens + query) * width + (i64)head * headDim;
#pragma unroll
        for (int c = 0; c < CHUNKS; ++c) {
            const int dimension = lane + 32 * c;
            if (dimension < headDim) row[dimension] = nk_float_to_bf16(accumulator[i][c] * inverse);
        }
    }
}

}  // namespace

NK_KERNEL void nunchaku_encoder_attention_bf16_c2(const u16* qkv, u16* out, const float* bias, int tokens, int heads,
                                                   int headDim, i64 rowStride, i64 keyOffset, i64 valueOffset,
                                                   float scale, int causal) {
    encoder_attention<2>(qkv, out, bias, tokens, heads, headDim, rowStride, keyOffset, valueOffset, scale, causal);
}

NK_KERNEL void nunchaku_encoder_attention_bf16_c4(const u16* qkv, u16* out, const float* bias, int tokens, int heads,
                                                   int headDim, i64 rowStride, i64 keyOffset, i64 valueOffset,
                                                   float scale, int causal) {
    encoder_attention<4>(qkv, out, bias, tokens, heads, headDim, rowStride, keyOffset, valueOffset, scale, causal);
}

NK_KERNEL void nunchaku_encoder_attention_bf16_c16(const u16* qkv, u16* out, const float* bias, int tokens, int heads,
                                                   int headDim, i64 rowStride, i64 keyOffset, i64 valueOffset,
                                                   float scale, int causal) {
    encoder_attention<16>(qkv, out, bias, tokens, heads, headDim, rowStride, keyOffset, valueOffset, scale, causal);
}
