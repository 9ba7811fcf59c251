// ops_tokens.cu: copies along the token axis, for concatenating [B, Sᵢ, …] tensors into [B, ΣSᵢ, …] and splitting
// them again. One launch copies `tokens` tokens of every sample, from token `sourceFirst` of a tensor with
// `sourceTokens` tokens per sample to token `destinationFirst` of one with `destinationTokens`. Units are 16 bytes
// when the token size (and so every offset) allows it, single bytes otherwise; the launcher picks.
#include "nunchaku_common.cuh"

template <class Unit>
NK_DEVICE void copy_tokens(const Unit* __restrict__ source, Unit* __restrict__ destination, i64 samples, i64 tokens,
                           i64 unitsPerToken, i64 sourceTokens, i64 sourceFirst, i64 destinationTokens,
                           i64 destinationFirst) {
    const i64 units = samples * tokens * unitsPerToken;
    for (i64 unit = nk_global_thread_index(); unit < units; unit += nk_grid_thread_count()) {
        const i64 sample = unit / (tokens * unitsPerToken);
        const i64 token = (unit / unitsPerToken) % tokens;
        const i64 offset = unit % unitsPerToken;
        destination[(sample * destinationTokens + destinationFirst + token) * unitsPerToken + offset] =
            source[(sample * sourceTokens + sourceFirst + token) * unitsPerToken + offset];
    }
}

NK_KERNEL void nunchaku_copy_tokens_16b(const uint4* source, uint4* destination, i64 samples, i64 tokens,
                                        i64 unitsPerToken, i64 sourceTokens, i64 sourceFirst, i64 destinationTokens,
                                        i64 destinationFirst) {
    copy_tokens(source, destination, samples, tokens, unitsPerToken, sourceTokens, sourceFirst, destinationTokens,
                destinationFirst);
}

NK_KERNEL void nunchaku_copy_tokens_1b(const u8* source, u8* destination, i64 samples, i64 tokens, i64 unitsPerToken,
                                       i64 sourceTokens, i64 sourceFirst, i64 destinationTokens, i64 destinationFirst) {
    copy_tokens(source, destination, samples, tokens, unitsPerToken, sourceTokens, sourceFirst, destinationTokens,
                destinationFirst);
}
