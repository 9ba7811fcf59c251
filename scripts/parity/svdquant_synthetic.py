"""Synthetic Nunchaku SVDQuant FLUX checkpoints: random-but-sensible canonical tensors for every layer, packed into
Nunchaku's merged-file layout (C++ names, research/nunchaku-internals.md §1.4).

Tests/ModelsTests/Support/SyntheticSVDQuantFlux.swift makes the same tensors bit for bit. Both use the name-hashed
generator of flux_transformer_reference.py: for the tensor `name`, u_i = splitmix64(fnv1a64(name) XOR seed, i) >> 40
(24 bits), and from it

    byte_i    = u_i & 0xFF                                   (4-bit code pairs)
    fp8_i     = base + (u_i & 15)                            (float8 e4m3 micro-scales, base = the code of 2^-3)
    uniform_i = offset + scale · ((u_i >> 17) − 64) / 64     (7 random bits; exact in bf16 for the values used)

Per W4A4 layer (N outputs, K inputs, rank 32; p = 2^−⌊log2(K)/2⌋ ≈ 1/√K): qweight = bytes; INT4 wscales =
uniform(1.5·s, 0.5·s) with s = p/32, NVFP4 wscales = fp8 bytes plus wtscale = [p/4] (or, for the fused qkv layers,
wcscales = uniform(1.5·p/4, 0.5·p/4) per channel); smooth and smooth_orig = uniform(1, 0.5); lora_down =
uniform(0, p); lora_up = uniform(0, 1/2); bias = uniform(0, 1/8), zeros for single-block out_proj (as in real
files). The low-rank branch then carries most of each weight and the 4-bit residual about a quarter of it, as after
SVDQuant's SVD.
Per AWQ adaLN layer (N = S·D): qweight = bytes, wscales = uniform(1.5·s, 0.5·s) with s = p/4, wzeros = −8·wscales,
bias = uniform(0, 1/8) with +1 added (rounded to bf16) on the scale chunks 1 and S−2, all in natural channel order
before the interleave. Unquantized tensors: `.weight` = uniform(0, 2^−⌊log2(fan_in)/2⌋), `.bias` = uniform(0, 1/8),
qk-norm weights = uniform(1, 1/2). Everything 16-bit is bf16.
"""
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "reference"))
from seeded_weights import fnv1a64, splitmix64_stream  # noqa: E402
from svdquant_pack_reference import (pack_awq, pack_group_scales, pack_micro_scales, pack_proj_down,  # noqa: E402
                                     pack_proj_up, pack_qweight, pack_vector, interleave_rows)

RANK = 32
FP8_BASE = 4 << 3  # e4m3 code of 2^-3


def stream(name, count, seed):
    return splitmix64_stream(fnv1a64(name) ^ seed, count) >> np.uint64(40)


def uniform(name, shape, offset, scale, seed):
    """bf16 tensor; raises if a value is not exactly representable (the Swift side relies on exactness)."""
    count = int(np.prod(shape))
    m = (stream(name, count, seed) >> np.uint64(17)).astype(np.float64)
    values = torch.from_numpy((offset + scale * (m - 64) / 64).astype(np.float32)).reshape(shape)
    rounded = values.to(torch.bfloat16)
    assert torch.equal(rounded.float(), values), f"{name}: generated values are not exact in bf16"
    return rounded


def code_bytes(name, shape, seed):
    return (stream(name, int(np.prod(shape)), seed) & np.uint64(0xFF)).astype(np.uint8).reshape(shape)


def fp8_bytes(name, shape, seed):
    return (FP8_BASE + (stream(name, int(np.prod(shape)), seed) & np.uint64(15))).astype(np.uint8).reshape(shape)


def inverse_sqrt_power(k):
    return 2.0 ** -math.floor(math.log2(k) / 2)


def layers(config):
    """(name, kind, K, N, extra) for every linear of a Nunchaku FLUX checkpoint, in order. kind: 'dense', 'w4a4',
    'awq'; extra: {'after_gelu', 'fused_qkv', 'zero_bias'} for w4a4, the chunk count for awq."""
    d = config["num_attention_heads"] * config["attention_head_dim"]
    hidden = 4 * d
    out = config["patch_size"] ** 2 * (config.get("out_channels") or config["in_channels"])
    result = [("x_embedder", "dense", config["in_channels"], d, None),
              ("context_embedder", "dense", config["joint_attention_dim"], d, None)]
    embedders = ["timestep_embedder"] + (["guidance_embedder"] if config["guidance_embeds"] else [])
    for embedder in embedders:
        result += [(f"time_text_embed.{embedder}.linear_1", "dense", 256, d, None),
                   (f"time_text_embed.{embedder}.linear_2", "dense", d, d, None)]
    result += [("time_text_embed.text_embedder.linear_1", "dense", config["pooled_projection_dim"], d, None),
               ("time_text_embed.text_embedder.linear_2", "dense", d, d, None)]
    for i in range(config["num_layers"]):
        p = f"transformer_blocks.{i}"
        for suffix in ("", "_context"):
            result += [(f"{p}.norm1{suffix}.linear", "awq", d, 6 * d, 6),
                       (f"{p}.qkv_proj{suffix}", "w4a4", d, 3 * d, {"fused_qkv"}),
                       (f"{p}.out_proj{suffix}", "w4a4", d, d, set())]
        for mlp in ("mlp", "mlp_context"):
            result += [(f"{p}.{mlp}_fc1", "w4a4", d, hidden, set()),
                       (f"{p}.{mlp}_fc2", "w4a4", hidden, d, {"after_gelu"})]
    for i in range(config["num_single_layers"]):
        p = f"single_transformer_blocks.{i}"
        result += [(f"{p}.norm.linear", "awq", d, 3 * d, 3),
                   (f"{p}.qkv_proj", "w4a4", d, 3 * d, {"fused_qkv"}),
                   (f"{p}.mlp_fc1", "w4a4", d, hidden, set()),
                   (f"{p}.out_proj", "w4a4", d, d, {"zero_bias"}),
                   (f"{p}.mlp_fc2", "w4a4", hidden, d, {"after_gelu"})]
    result += [("norm_out.linear", "dense", d, 2 * d, None), ("proj_out", "dense", d, out, None)]
    return result


def norm_names(config):
    names = []
    for i in range(config["num_layers"]):
        names += [f"transformer_blocks.{i}.{n}.weight" for n in ("norm_q", "norm_k", "norm_added_q", "norm_added_k")]
    for i in range(config["num_single_layers"]):
        names += [f"single_transformer_blocks.{i}.{n}.weight" for n in ("norm_q", "norm_k")]
    return names


def canonical_w4a4(name, k, n, extra, precision, seed):
    """One W4A4 layer's canonical tensors (C++ names) as torch tensors: codes u8, 16-bit bf16, fp8 as uint8."""
    p = inverse_sqrt_power(k)
    t = {"qweight": torch.from_numpy(code_bytes(f"{name}.qweight", (n, k // 2), seed))}
    if precision == "int4":
        t["wscales"] = uniform(f"{name}.wscales", (k // 64, n), 1.5 * p / 32, 0.5 * p / 32, seed)
    else:
        t["wscales"] = torch.from_numpy(fp8_bytes(f"{name}.wscales", (k // 16, n), seed))
        if "fused_qkv" in extra:
            t["wcscales"] = uniform(f"{name}.wcscales", (n,), 1.5 * p / 4, 0.5 * p / 4, seed)
        else:
            t["wtscale"] = torch.tensor([p / 4], dtype=torch.bfloat16)
    t["bias"] = torch.zeros(n, dtype=torch.bfloat16) if "zero_bias" in extra else uniform(f"{name}.bias", (n,), 0, 0.125, seed)
    t["smooth"] = uniform(f"{name}.smooth", (k,), 1, 0.5, seed)
    t["smooth_orig"] = uniform(f"{name}.smooth_orig", (k,), 1, 0.5, seed)
    t["lora_down"] = uniform(f"{name}.lora_down", (k, RANK), 0, p, seed)
    t["lora_up"] = uniform(f"{name}.lora_up", (n, RANK), 0, 0.5, seed)
    return t


def canonical_awq(name, k, n, chunks, seed):
    """One AWQ adaLN layer's canonical tensors, natural channel order, +1 folded into the scale-chunk biases."""
    s = inverse_sqrt_power(k) / 4
    wscales = uniform(f"{name}.wscales", (k // 64, n), 1.5 * s, 0.5 * s, seed)
    bias = uniform(f"{name}.bias", (n,), 0, 0.125, seed).float()
    width = n // chunks
    for chunk in sorted({1, chunks - 2}):
        bias[chunk * width:(chunk + 1) * width] += 1
    return {"qweight": torch.from_numpy(code_bytes(f"{name}.qweight", (n, k // 2), seed)), "wscales": wscales,
            "wzeros": (-8 * wscales.float()).to(torch.bfloat16), "bias": bias.to(torch.bfloat16)}


def bits(tensor):
    """The raw bits of a torch tensor as a NumPy array (16-bit floats as int16)."""
    if tensor.dtype in (torch.bfloat16, torch.float16):
        return tensor.view(torch.int16).numpy()
    return tensor.numpy()


def from_bits(array, like):
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.view(like.dtype) if like.dtype in (torch.bfloat16, torch.float16) else tensor


def pack_w4a4(t, precision):
    """Canonical → Nunchaku packed tensors (same names)."""
    packed = {"qweight": torch.from_numpy(pack_qweight(t["qweight"].numpy()))}
    if precision == "int4":
        packed["wscales"] = from_bits(pack_group_scales(bits(t["wscales"])), t["wscales"])
    else:
        packed["wscales"] = torch.from_numpy(pack_micro_scales(t["wscales"].numpy())).view(torch.float8_e4m3fn)
    for vector in ("bias", "smooth", "smooth_orig", "wcscales"):
        if vector in t:
            packed[vector] = from_bits(pack_vector(bits(t[vector])), t[vector])
    if "wtscale" in t:
        packed["wtscale"] = t["wtscale"]
    packed["lora_down"] = from_bits(pack_proj_down(bits(t["lora_down"])), t["lora_down"])
    packed["lora_up"] = from_bits(pack_proj_up(bits(t["lora_up"])), t["lora_up"])
    return packed


def pack_awq_layer(t, chunks):
    """Canonical natural order → Nunchaku (rows/columns interleaved, TinyChat qweight)."""
    return {"qweight": torch.from_numpy(pack_awq(interleave_rows(t["qweight"].numpy(), chunks))),
            "wscales": from_bits(interleave_rows(bits(t["wscales"]).T, chunks).T.copy(), t["wscales"]),
            "wzeros": from_bits(interleave_rows(bits(t["wzeros"]).T, chunks).T.copy(), t["wzeros"]),
            "bias": from_bits(interleave_rows(bits(t["bias"]), chunks), t["bias"])}


def checkpoint(config, precision, seed):
    """(packed tensors by C++ name, canonical tensors by layer) of a synthetic Nunchaku FLUX checkpoint."""
    packed, canonical = {}, {}
    for name, kind, k, n, extra in layers(config):
        if kind == "dense":
            packed[f"{name}.weight"] = uniform(f"{name}.weight", (n, k), 0, inverse_sqrt_power(k), seed)
            packed[f"{name}.bias"] = uniform(f"{name}.bias", (n,), 0, 0.125, seed)
            continue
        if kind == "w4a4":
            canonical[name] = canonical_w4a4(name, k, n, extra, precision, seed)
            layer = pack_w4a4(canonical[name], precision)
        else:
            canonical[name] = canonical_awq(name, k, n, extra, seed)
            layer = pack_awq_layer(canonical[name], extra)
        for tensor, value in layer.items():
            packed[f"{name}.{tensor}"] = value
    for name in norm_names(config):
        packed[name] = uniform(name, (config["attention_head_dim"],), 1, 0.5, seed)
    return packed, canonical


def quantization_config(precision, rank=RANK):
    """The `quantization_config` metadata Nunchaku's merge_safetensors writes (research §1.1)."""
    if precision == "int4":
        spec = {"dtype": "int4", "scale_dtype": None, "group_size": 64}
        return json.dumps({"method": "svdquant", "weight": spec, "activation": spec, "rank": rank})
    return json.dumps({"method": "svdquant",
                       "weight": {"dtype": "fp4_e2m1_all", "scale_dtype": [None, "fp8_e4m3_nan"], "group_size": 16},
                       "activation": {"dtype": "fp4_e2m1_all", "scale_dtype": "fp8_e4m3_nan", "group_size": 16},
                       "rank": rank})


def digest(tensor):
    """Σ_i splitmix64(0, 256·i + byte_i) mod 2^64 over the tensor's bytes, as 16 hex digits (order-sensitive and
    cheap in NumPy; the Swift test computes the same)."""
    data = np.frombuffer(tensor.contiguous().view(torch.uint8).numpy().tobytes(), dtype=np.uint8).astype(np.uint64)
    index = np.arange(data.size, dtype=np.uint64) * np.uint64(256) + data
    z = (index + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return f"{int(z.sum(dtype=np.uint64)):016x}"
