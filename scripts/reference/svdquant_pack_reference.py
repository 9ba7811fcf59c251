#!/usr/bin/env python3
"""Independent NumPy reference for Nunchaku's SVDQuant packing layouts.

Packs random logical (canonical, row-major) tensors with the reshape/permute formulation of the reference packers
described in research/nunchaku-internals.md §2 (nunchaku `packer.py`, deepcompressor/TinyChat `pack_w4`) and saves
both forms to one safetensors file, for the Swift layout code to be checked against once it can read safetensors:

    <name>.canonical   the logical tensor in the canonical layout of docs/svdquant-layouts.md
    <name>.nunchaku    the same tensor packed the way Nunchaku checkpoints store it

Names: qweight (u8 / i8), wscales_int4 (f16), bias (f16), wscales_nvfp4 (u8 holding float8 e4m3 bytes),
proj_down (f16), proj_up (f16), awq_qweight (u8 / i32), and awq_qweight_s6 / awq_wscales_s6 / awq_bias_s6 for an adaLN
layer with 6 interleaved chunks. Half tensors hold random fp16 values: the layouts only move elements, so the dtype
does not matter. The file's metadata records the shapes and the seed.

Usage: svdquant_pack_reference.py OUTPUT.safetensors [--n 256] [--k 384] [--rank 48] [--seed 0] [--check]
--check also verifies every packing against the closed-form index formulas of the research document.

Checkpoint mode: svdquant_pack_reference.py --flux-checkpoint NUNCHAKU.safetensors CANONICAL.safetensors
[--precision int4|nvfp4] [--seed 0] [--width 128] writes a small FLUX-like Nunchaku merged file (one double and one
single block of the given width, C++ names, bf16, `config`/`model_class`/`quantization_config` metadata) packed by the
packers above, and the same model in swift-nunchaku's canonical layout (`nunchaku_layout: canonical`, natural vector
order; AWQ codes as u8 [N, K/2] in the file's row order) as the logical tensors it was packed from.
"""

import argparse
import json

import numpy as np
import safetensors
from safetensors.numpy import save_file


def nibbles(packed_bytes):
    """u8 [..., C/2] → codes [..., C] (low nibble first)."""
    return np.stack([packed_bytes & 0xF, packed_bytes >> 4], axis=-1).reshape(*packed_bytes.shape[:-1], -1)


def pairs(codes):
    """codes [..., C] → u8 [..., C/2] (first code in the low nibble)."""
    return (codes[..., 0::2] & 0xF) | ((codes[..., 1::2] & 0xF) << 4)


def pack_qweight(canonical):
    """§2.2: codes (N/128, 8, 2, 8, 1, K/64, 1, 2, 4, 8) → (n_tiles, k_tiles, 1, n_packs, n_lanes, k_lanes,
    n_pack, k_pack, 1, reg); 8 codes per little-endian u32."""
    codes = nibbles(canonical)
    n, k = codes.shape
    tiled = codes.reshape(n // 128, 8, 2, 8, 1, k // 64, 1, 2, 4, 8).transpose(0, 5, 6, 1, 3, 8, 2, 7, 4, 9)
    return pairs(tiled.reshape(-1)).reshape(n, k // 2).view(np.int8)


def pack_group_scales(canonical):
    """§2.3: [G, N] → per channel [N, G] viewed as (N/128, 1, 8, 2, 4, 2, G) → (blocks, G, 1, 8, 4, 2, 2)."""
    groups, n = canonical.shape
    per_channel = canonical.T.reshape(n // 128, 1, 8, 2, 4, 2, groups)
    return np.ascontiguousarray(per_channel.transpose(0, 6, 1, 2, 4, 3, 5)).reshape(groups, n)


def pack_vector(canonical):
    """§2.4: a per-channel vector is the group-scale packing with one group."""
    return pack_group_scales(canonical.reshape(1, -1)).reshape(-1)


def pack_micro_scales(canonical):
    """§2.5: [K/16, N] → [N, K/16] viewed as (N/128, 1, 4, 4, 8, K/64, 4) → (blocks, K/64, 1, 8, 4, 4, 4)."""
    groups, n = canonical.shape
    per_channel = canonical.T.reshape(n // 128, 1, 4, 4, 8, groups // 4, 4)
    return np.ascontiguousarray(per_channel.transpose(0, 5, 1, 4, 3, 2, 6)).reshape(groups, n)


def pack_tiles(tiles, outer, rank_tiles):
    """§2.6: 16×16 tiles (outer, rank_tiles, 16, 16) viewed as (…, 2, 8, 1, 2, 4, 2) → (…, 8, 4, 2, 2, 1, 2)."""
    shaped = tiles.reshape(outer, rank_tiles, 2, 8, 1, 2, 4, 2)
    return np.ascontiguousarray(shaped.transpose(0, 1, 3, 6, 2, 5, 4, 7))


def pack_proj_down(canonical):
    """proj_down [K, R] = lora_A [R, K]ᵀ; lora_A tiles (R/16, 16, K/16, 16) → (K/16, R/16, 16, 16)."""
    k, rank = canonical.shape
    lora_a = canonical.T
    tiles = lora_a.reshape(rank // 16, 16, k // 16, 16).transpose(2, 0, 1, 3)
    return pack_tiles(tiles, k // 16, rank // 16).reshape(k, rank)


def pack_proj_up(canonical):
    """proj_up [N, R]: tiles (N/16, 16, R/16, 16) → (N/16, R/16, 16, 16)."""
    n, rank = canonical.shape
    tiles = canonical.reshape(n // 16, 16, rank // 16, 16).transpose(0, 2, 1, 3)
    return pack_tiles(tiles, n // 16, rank // 16).reshape(n, rank)


def pack_awq(canonical):
    """§2.7 TinyChat pack_w4: per 32 inputs, code p·8 + j is nibble p of int16 j; int16 array (N/4, 4, K/64, 16)
    → (N/4, K/64, 4, 16); viewed as int32 [N/4, K/2]."""
    codes = nibbles(canonical).astype(np.uint16)
    n, k = codes.shape
    quads = codes.reshape(n, k // 32, 4, 8)
    words = quads[:, :, 0] | (quads[:, :, 1] << 4) | (quads[:, :, 2] << 8) | (quads[:, :, 3] << 12)
    tiled = words.reshape(n // 4, 4, k // 64, 16).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(tiled).astype("<u2").view(np.int32).reshape(n // 4, k // 2)


def interleave_rows(canonical, chunks):
    """deepcompressor's adaLN reorder: (S, N/S, …) → (N/S, S, …) along the output channels (axis 0)."""
    n = canonical.shape[0]
    return np.ascontiguousarray(canonical.reshape(chunks, n // chunks, -1).transpose(1, 0, 2)).reshape(canonical.shape)


def check_closed_forms(t, n, k, rank):
    """Checks the packed tensors against the closed-form index formulas of research/nunchaku-internals.md §2."""
    codes, packed_codes = nibbles(t["qweight.canonical"]), nibbles(t["qweight.nunchaku"].view(np.uint8)).reshape(-1)
    for row, col in [(0, 0), (9, 37), (n - 1, k - 1), (130 % n, 70 % k)]:
        word = (((((row // 128) * (k // 64) + col // 64) * 8 + (row % 128) // 16) * 8 + row % 8) * 4 + (col % 32) // 8) * 4 \
            + ((row % 16) // 8) * 2 + (col % 64) // 32
        assert packed_codes[word * 8 + col % 8] == codes[row, col], ("qweight", row, col)

    def slot(channel):
        r = channel % 128
        return (r // 16) * 16 + ((r % 8) // 2) * 4 + ((r % 16) // 8) * 2 + r % 2

    scales, packed = t["wscales_int4.canonical"], t["wscales_int4.nunchaku"].reshape(-1)
    for g in range(scales.shape[0]):
        for c in range(n):
            assert packed[((c // 128) * (k // 64) + g) * 128 + slot(c)] == scales[g, c], ("wscales", g, c)
    micro, packed = t["wscales_nvfp4.canonical"], t["wscales_nvfp4.nunchaku"].reshape(-1)
    for g in range(micro.shape[0]):
        for c in range(n):
            r = c % 128
            index = (((((c // 128) * (k // 64) + g // 4) * 8 + r % 8) * 4 + (r % 32) // 8) * 4 + r // 32) * 4 + g % 4
            assert packed[index] == micro[g, c], ("micro", g, c)

    def lowrank_slot(outer, rank_tile, fn, fk):
        return ((((outer * (rank // 16) + rank_tile) * 8 + fn % 8) * 4 + (fk % 8) // 2) * 2 + fn // 8) * 4 + (fk // 8) * 2 + fk % 2

    down, packed = t["proj_down.canonical"], t["proj_down.nunchaku"].reshape(-1)
    for c in range(k):
        for r in range(rank):
            assert packed[lowrank_slot(c // 16, r // 16, r % 16, c % 16)] == down[c, r], ("down", c, r)
    up, packed = t["proj_up.canonical"], t["proj_up.nunchaku"].reshape(-1)
    for c in range(n):
        for r in range(rank):
            assert packed[lowrank_slot(c // 16, r // 16, c % 16, r % 16)] == up[c, r], ("up", c, r)
    awq, packed = nibbles(t["awq_qweight.canonical"]), t["awq_qweight.nunchaku"].view(np.uint16).reshape(-1)
    for o in range(awq.shape[0]):
        for i in range(k):
            word = ((o // 4) * (k // 64) + i // 64) * 64 + (o % 4) * 16 + ((i // 32) % 2) * 8 + i % 8
            assert (packed[word] >> (4 * ((i % 32) // 8))) & 0xF == awq[o, i], ("awq", o, i)


FLUX_W4A4 = [  # (C++ name, K / width, N / width)
    ("transformer_blocks.0.qkv_proj", 1, 3), ("transformer_blocks.0.qkv_proj_context", 1, 3),
    ("transformer_blocks.0.out_proj", 1, 1), ("transformer_blocks.0.out_proj_context", 1, 1),
    ("transformer_blocks.0.mlp_fc1", 1, 4), ("transformer_blocks.0.mlp_fc2", 4, 1),
    ("transformer_blocks.0.mlp_context_fc1", 1, 4), ("transformer_blocks.0.mlp_context_fc2", 4, 1),
    ("single_transformer_blocks.0.qkv_proj", 1, 3), ("single_transformer_blocks.0.mlp_fc1", 1, 4),
    ("single_transformer_blocks.0.out_proj", 1, 1), ("single_transformer_blocks.0.mlp_fc2", 4, 1),
]
FLUX_AWQ = [("transformer_blocks.0.norm1.linear", 6), ("transformer_blocks.0.norm1_context.linear", 6),
            ("single_transformer_blocks.0.norm.linear", 3)]
FLUX_DENSE = [("x_embedder.weight", (1, 64)), ("x_embedder.bias", (1,)), ("proj_out.weight", (64, 1)), ("proj_out.bias", (64,)),
              ("transformer_blocks.0.norm_q.weight", (128,)), ("single_transformer_blocks.0.norm_k.weight", (128,))]


def write_specs(path, tensors, metadata):
    """tensors: name -> (safetensors dtype name, shape, numpy array holding the bytes)."""
    keep, specs = [], {}
    for name, (dtype, shape, array) in tensors.items():
        array = np.ascontiguousarray(array)
        keep.append(array)
        specs[name] = safetensors.TensorSpec(dtype=dtype, shape=list(shape), data_ptr=array.ctypes.data, data_len=array.nbytes)
    safetensors.serialize_file(specs, path, metadata=metadata)


def write_flux_checkpoint(nunchaku_path, canonical_path, precision, seed, width=128):
    """A FLUX-like Nunchaku merged file and its canonical (logical) twin; see the module docstring. `width` is the
    model width (FLUX.1: 3072); in FLUX_DENSE shapes a 1 stands for it."""
    assert width % 128 == 0, "the width must be a multiple of 128"
    rng = np.random.default_rng(seed)
    group, rank = (64, 16) if precision == "int4" else (16, 32)

    def bf16(low, high, *shape):
        """bf16 bit patterns (u16) of uniform values in [low, high)."""
        return (rng.uniform(low, high, shape).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)

    nunchaku, canonical = {}, {}

    def add(name, dtype, logical, packed):
        canonical[name] = (dtype, logical.shape, logical)
        nunchaku[name] = (dtype, packed.shape, packed)

    for index, (prefix, k_mult, n_mult) in enumerate(FLUX_W4A4):
        k, n = width * k_mult, width * n_mult
        codes = rng.integers(0, 256, size=(n, k // 2), dtype=np.uint8)
        canonical[prefix + ".qweight"] = ("uint8", codes.shape, codes)
        nunchaku[prefix + ".qweight"] = ("int8", codes.shape, pack_qweight(codes))
        if precision == "int4":
            scales = bf16(0.001, 0.02, k // group, n)
            add(prefix + ".wscales", "bfloat16", scales, pack_group_scales(scales))
        else:
            scales = rng.integers(0x08, 0x7F, size=(k // group, n), dtype=np.uint8)
            add(prefix + ".wscales", "float8_e4m3fn", scales, pack_micro_scales(scales))
            if index % 3 == 0:
                channel = bf16(0.5, 2, n)
                add(prefix + ".wcscales", "bfloat16", channel, pack_vector(channel))
            if index % 3 == 1:
                alpha = bf16(0.5, 2, 1)
                add(prefix + ".wtscale", "bfloat16", alpha, alpha)
        for name, length in [("bias", n), ("smooth", k), ("smooth_orig", k)]:
            vector = bf16(0.25, 4, length) if name.startswith("smooth") else bf16(-1, 1, length)
            add(f"{prefix}.{name}", "bfloat16", vector, pack_vector(vector))
        down, up = bf16(-0.1, 0.1, k, rank), bf16(-0.1, 0.1, n, rank)
        add(prefix + ".lora_down", "bfloat16", down, pack_proj_down(down))
        add(prefix + ".lora_up", "bfloat16", up, pack_proj_up(up))
    for prefix, chunks in FLUX_AWQ:
        k, n = width, width * chunks
        codes = rng.integers(0, 256, size=(n, k // 2), dtype=np.uint8)
        canonical[prefix + ".qweight"] = ("uint8", codes.shape, codes)
        nunchaku[prefix + ".qweight"] = ("int32", (n // 4, k // 2), pack_awq(codes))
        for name, shape, low, high in [("wscales", (k // 64, n), 0.001, 0.02), ("wzeros", (k // 64, n), -0.2, 0),
                                       ("bias", (n,), -1, 1)]:
            values = bf16(low, high, *shape)
            add(f"{prefix}.{name}", "bfloat16", values, values)
    for name, shape in FLUX_DENSE:
        values = bf16(-1, 1, *[width if size == 1 else size for size in shape])
        add(name, "bfloat16", values, values)

    config = json.dumps({"_class_name": "FluxTransformer2DModel", "num_layers": 1, "num_single_layers": 1})
    dtype = {"int4": ("int4", None), "nvfp4": ("fp4_e2m1_all", "fp8_e4m3_nan")}[precision]
    quantization = json.dumps({"method": "svdquant",
                               "weight": {"dtype": dtype[0], "scale_dtype": dtype[1] and [None, dtype[1]], "group_size": group},
                               "activation": {"dtype": dtype[0], "scale_dtype": dtype[1], "group_size": group}, "rank": rank})
    metadata = {"config": config, "model_class": "NunchakuFluxTransformer2dModel", "quantization_config": quantization}
    write_specs(nunchaku_path, nunchaku, metadata)
    write_specs(canonical_path, canonical, dict(metadata, nunchaku_layout="canonical", nunchaku_vector_order="natural"))
    print(f"wrote {len(nunchaku)} tensors to {nunchaku_path} and {canonical_path} ({precision}, rank {rank})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", nargs="?")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--k", type=int, default=384)
    parser.add_argument("--rank", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--flux-checkpoint", nargs=2, metavar=("NUNCHAKU", "CANONICAL"))
    parser.add_argument("--precision", choices=["int4", "nvfp4"], default="int4")
    parser.add_argument("--width", type=int, default=128, help="model width for --flux-checkpoint (FLUX.1: 3072)")
    args = parser.parse_args()
    if args.flux_checkpoint:
        write_flux_checkpoint(*args.flux_checkpoint, args.precision, args.seed, args.width)
        return
    if args.output is None:
        parser.error("give OUTPUT.safetensors or --flux-checkpoint NUNCHAKU CANONICAL")
    n, k, rank = args.n, args.k, args.rank
    assert n % 128 == 0 and k % 128 == 0 and rank % 16 == 0, "N and K must be multiples of 128, the rank of 16"
    rng = np.random.default_rng(args.seed)

    def half(*shape):
        return rng.standard_normal(shape).astype(np.float16)

    def codes_bytes(rows, columns):
        return rng.integers(0, 256, size=(rows, columns // 2), dtype=np.uint8)

    t = {}
    t["qweight.canonical"] = codes_bytes(n, k)
    t["qweight.nunchaku"] = pack_qweight(t["qweight.canonical"])
    t["wscales_int4.canonical"] = half(k // 64, n)
    t["wscales_int4.nunchaku"] = pack_group_scales(t["wscales_int4.canonical"])
    t["bias.canonical"] = half(n)
    t["bias.nunchaku"] = pack_vector(t["bias.canonical"])
    t["wscales_nvfp4.canonical"] = rng.integers(0, 0x7F, size=(k // 16, n), dtype=np.uint8)
    t["wscales_nvfp4.nunchaku"] = pack_micro_scales(t["wscales_nvfp4.canonical"])
    t["proj_down.canonical"] = half(k, rank)
    t["proj_down.nunchaku"] = pack_proj_down(t["proj_down.canonical"])
    t["proj_up.canonical"] = half(n, rank)
    t["proj_up.nunchaku"] = pack_proj_up(t["proj_up.canonical"])
    t["awq_qweight.canonical"] = codes_bytes(n, k)
    t["awq_qweight.nunchaku"] = pack_awq(t["awq_qweight.canonical"])
    # adaLN layer with 6 chunks: N must be a multiple of 24 (6 chunks, rows in quads).
    n6 = 6 * 4 * max(1, n // 24)
    t["awq_qweight_s6.canonical"] = codes_bytes(n6, k)
    t["awq_qweight_s6.nunchaku"] = pack_awq(interleave_rows(t["awq_qweight_s6.canonical"], 6))
    t["awq_wscales_s6.canonical"] = half(k // 64, n6)
    t["awq_wscales_s6.nunchaku"] = interleave_rows(t["awq_wscales_s6.canonical"].T, 6).T.copy()
    t["awq_bias_s6.canonical"] = half(n6)
    t["awq_bias_s6.nunchaku"] = interleave_rows(t["awq_bias_s6.canonical"], 6)
    if args.check:
        check_closed_forms(t, n, k, rank)
    metadata = {"n": str(n), "k": str(k), "rank": str(rank), "seed": str(args.seed), "awq_s6_n": str(n6),
                "layouts": json.dumps(sorted({name.split(".")[0] for name in t}))}
    save_file({name: np.ascontiguousarray(value) for name, value in t.items()}, args.output, metadata=metadata)
    print(f"wrote {len(t)} tensors to {args.output}" + (" (closed forms checked)" if args.check else ""))


if __name__ == "__main__":
    main()
