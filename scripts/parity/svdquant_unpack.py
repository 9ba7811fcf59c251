"""Unpacking Nunchaku's SVDQuant tensors and building the dense weights they stand for (NumPy, float64).

The inverses of the reshape/permute packers in scripts/reference/svdquant_pack_reference.py (research/
nunchaku-internals.md §2.2–2.7), written as "reshape to the packed axis order, transpose back", plus the dense
equivalents of §2.9:

    INT4 : W_eff[n][k] = q[n][k] · wscales[k/64][n] / smooth[k] + Σ_r proj_up[n][r] · proj_down[k][r]
    NVFP4: W_eff[n][k] = e2m1(q[n][k]) · wscales[k/16][n] · wtscale · wcscales[n] / smooth[k] + (same low rank)
    act_unsigned INT4 layers (FLUX mlp_fc2): bias_eff = bias + 0.171875 · Σ_k residual[n][k] / smooth[k]
    AWQ W4A16: w[n][k] = q[n][k] · wscales[k/64][n] + wzeros[k/64][n], adaLN rows de-interleaved.

Every function takes the tensors as NumPy arrays holding the raw stored bits (16-bit floats as int16/uint16, fp8 as
uint8); `float_values` turns stored 16-bit or fp8 bits into float64 through torch.
"""
import numpy as np
import torch

UNSIGNED_SHIFT = 0.171875
E2M1_VALUES = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float64)


def nibbles(packed_bytes):
    """u8 [..., C/2] → codes [..., C] (low nibble first)."""
    return np.stack([packed_bytes & 0xF, packed_bytes >> 4], axis=-1).reshape(*packed_bytes.shape[:-1], -1)


def pairs(codes):
    """codes [..., C] → u8 [..., C/2] (first code in the low nibble)."""
    return ((codes[..., 0::2] & 0xF) | ((codes[..., 1::2] & 0xF) << 4)).astype(np.uint8)


def unpermute(packed, logical_shape, axes):
    """The inverse of `logical.reshape(logical_shape).transpose(axes)` flattened: returns the logical array."""
    transposed_shape = [logical_shape[a] for a in axes]
    return packed.reshape(transposed_shape).transpose(np.argsort(axes))


def unpack_qweight(packed):
    """§2.2, i8/u8 [N, K/2] tiled → canonical u8 [N, K/2] (row-major codes, low nibble = even k)."""
    n, k = packed.shape[0], 2 * packed.shape[1]
    codes = nibbles(packed.view(np.uint8).reshape(-1))
    logical = unpermute(codes, (n // 128, 8, 2, 8, 1, k // 64, 1, 2, 4, 8), (0, 5, 6, 1, 3, 8, 2, 7, 4, 9))
    return pairs(logical.reshape(n, k))


def unpack_group_scales(packed):
    """§2.3, INT4 wscales [K/64, N] packed → canonical [K/64, N] (any 16-bit element type)."""
    groups, n = packed.shape
    per_channel = unpermute(packed.reshape(-1), (n // 128, 1, 8, 2, 4, 2, groups), (0, 6, 1, 2, 4, 3, 5))
    return np.ascontiguousarray(per_channel.reshape(n, groups).T)


def unpack_vector(packed):
    """§2.4: bias, smooth, smooth_orig, wcscales (one-group scale packing)."""
    return unpack_group_scales(packed.reshape(1, -1)).reshape(-1)


def unpack_micro_scales(packed):
    """§2.5, NVFP4 wscales [K/16, N] packed fp8 bytes → canonical [K/16, N]."""
    groups, n = packed.shape
    per_channel = unpermute(packed.reshape(-1), (n // 128, 1, 4, 4, 8, groups // 4, 4), (0, 5, 1, 4, 3, 2, 6))
    return np.ascontiguousarray(per_channel.reshape(n, groups).T)


def _unpack_tiles(packed, outer, rank_tiles):
    """§2.6: MMA-fragment tiles → (outer, rank_tiles, 16, 16) logical 16×16 tiles."""
    return unpermute(packed.reshape(-1), (outer, rank_tiles, 2, 8, 1, 2, 4, 2), (0, 1, 3, 6, 2, 5, 4, 7)).reshape(
        outer, rank_tiles, 16, 16)


def unpack_proj_down(packed):
    """lora_down [K, R] packed → canonical proj_down [K, R] (= lora_Aᵀ)."""
    k, rank = packed.shape
    tiles = _unpack_tiles(packed, k // 16, rank // 16)  # (K/16, R/16, r%16, k%16)
    return np.ascontiguousarray(tiles.transpose(0, 3, 1, 2).reshape(k, rank))


def unpack_proj_up(packed):
    """lora_up [N, R] packed → canonical proj_up [N, R]."""
    n, rank = packed.shape
    tiles = _unpack_tiles(packed, n // 16, rank // 16)  # (N/16, R/16, n%16, r%16)
    return np.ascontiguousarray(tiles.transpose(0, 2, 1, 3).reshape(n, rank))


def unpack_awq(packed):
    """§2.7, TinyChat int32 [N/4, K/2] → canonical u8 [N, K/2] (unsigned codes, rows in stored order)."""
    quads, half_k = packed.shape
    n, k = 4 * quads, 2 * half_k
    # int16 (g, half, j) holds in its nibble p the code of input i = 64·g + 32·half + 8·p + j.
    words = packed.view(np.uint16).reshape(n // 4, k // 64, 4, 16).transpose(0, 2, 1, 3).reshape(n, k // 64, 2, 8)
    logical = np.stack([(words >> (4 * p)) & 0xF for p in range(4)], axis=3).reshape(n, k)
    return pairs(logical.astype(np.uint8))


def deinterleave_rows(array, chunks):
    """Nunchaku adaLN order (row d·S + s) → natural order (row s·D + d) along axis 0."""
    n = array.shape[0]
    return np.ascontiguousarray(array.reshape(n // chunks, chunks, -1).transpose(1, 0, 2)).reshape(array.shape)


def float_values(bits, dtype):
    """float64 values of raw stored bits: dtype torch.bfloat16 / torch.float16 / torch.float8_e4m3fn."""
    return torch.from_numpy(np.ascontiguousarray(bits)).view(dtype).to(torch.float64).numpy()


def w4a4_parts(tensors, precision, half_dtype):
    """(residual [N, K], smooth [K], proj_down [K, R], proj_up [N, R], bias [N]) in float64 from one layer's
    canonical tensors (dict of raw-bit arrays, C++ names); residual is the dequantized 4-bit weight in the smoothed
    input space. `half_dtype` is the torch type of the 16-bit tensors."""
    codes = nibbles(tensors["qweight"])
    n = codes.shape[0]
    if precision == "int4":
        values = ((codes.astype(np.int64) ^ 8) - 8).astype(np.float64)
        residual = values * np.repeat(float_values(tensors["wscales"], half_dtype).T, 64, axis=1)
    else:
        residual = E2M1_VALUES[codes] * np.repeat(float_values(tensors["wscales"], torch.float8_e4m3fn).T, 16, axis=1)
        if "wtscale" in tensors:
            residual = residual * float_values(tensors["wtscale"], half_dtype)[0]
        if "wcscales" in tensors:
            residual = residual * float_values(tensors["wcscales"], half_dtype)[:, None]
    bias = float_values(tensors["bias"], half_dtype) if "bias" in tensors else np.zeros(n)
    return (residual, float_values(tensors["smooth"], half_dtype), float_values(tensors["lora_down"], half_dtype),
            float_values(tensors["lora_up"], half_dtype), bias)


def w4a4_dense(tensors, precision, act_unsigned, half_dtype):
    """(W_eff [N, K], bias_eff [N]) in float64, §2.9."""
    residual, smooth, down, up, bias = w4a4_parts(tensors, precision, half_dtype)
    smoothed = residual / smooth[None, :]
    if act_unsigned:
        bias = bias + UNSIGNED_SHIFT * smoothed.sum(axis=1)
    return smoothed + up @ down.T, bias


def awq_dense(tensors, half_dtype):
    """(w [N, K], bias [N]) in float64 from one AWQ layer's canonical tensors (rows in natural order)."""
    codes = nibbles(tensors["qweight"]).astype(np.float64)
    scales = np.repeat(float_values(tensors["wscales"], half_dtype).T, 64, axis=1)
    zeros = np.repeat(float_values(tensors["wzeros"], half_dtype).T, 64, axis=1)
    return codes * scales + zeros, float_values(tensors["bias"], half_dtype)
