#!/usr/bin/env python3
"""Writes Tests/CPUBackendTests/Fixtures/ops.safetensors: inputs and PyTorch outputs for every CPU reference op.

Run with a CPU PyTorch + diffusers environment (e.g. /work/pyref/bin/python scripts/parity/make_op_fixtures.py).
Every case `<op>.<case>` stores its inputs (`….x`, `….weight`, …) and the expected output (`….out`), all fp32.
Cases ending in `_bf16` store inputs already rounded to bfloat16 (as BF16 tensors) and the output computed from those
rounded inputs in float64 (stored fp32): the Swift op in bf16 must return it rounded once to bf16.
"""
import argparse
import os

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux import FluxPosEmbed
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUTPUT = os.path.join(ROOT, "Tests", "CPUBackendTests", "Fixtures", "ops.safetensors")


def randn(*shape, scale=1.0, shift=0.0):
    return torch.randn(*shape, dtype=torch.float32) * scale + shift


def bf16(t):
    """The bf16 rounding of t, kept as a bf16 tensor (stored as BF16 in the file)."""
    return t.to(torch.bfloat16)


def up(t):
    """A bf16 input widened to float64: bf16 cases compute their expected output in float64 (then store fp32), so
    the expectation is the exact value the Swift op should round once to bf16."""
    return t.double()


def attention(q, k, v, mask=None):
    """SDPA on [B, S, H, D] tensors, fp32, math on the CPU; mask is [B, Skv] bool (True = attend)."""
    attn_mask = None if mask is None else mask[:, None, None, :]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_mask)
    return out.transpose(1, 2).contiguous()


def build_cases():
    tensors = {}

    def put(prefix, **named):
        for name, value in named.items():
            value = value.float() if value.dtype == torch.float64 else value
            tensors[f"{prefix}.{name}"] = value.clone().contiguous()

    # LayerNorm without affine (FLUX norm1/norm2, eps 1e-6) and with affine.
    x = randn(2, 5, 96, scale=3.0, shift=1.5)
    put("layer_norm.plain", x=x, out=F.layer_norm(x, (96,), eps=1e-6))
    x, w, b = randn(7, 48, scale=2.0), randn(48, scale=0.5, shift=1.0), randn(48, scale=0.3)
    put("layer_norm.affine", x=x, weight=w, bias=b, out=F.layer_norm(x, (48,), w, b, eps=1e-6))
    x = bf16(randn(3, 4, 64, scale=2.0, shift=-1.0))
    put("layer_norm.plain_bf16", x=x, out=F.layer_norm(up(x), (64,), eps=1e-6))

    # RMSNorm over the head dimension, weight around 1 (FLUX qk norm).
    x, w = randn(2, 3, 2, 64, scale=2.0), randn(64, scale=0.2, shift=1.0)
    put("rms_norm.heads", x=x, weight=w, out=F.rms_norm(x, (64,), w, eps=1e-6))
    x, w = bf16(randn(2, 3, 2, 128)), bf16(randn(128, scale=0.2, shift=1.0))
    put("rms_norm.heads_bf16", x=x, weight=w, out=F.rms_norm(up(x), (128,), up(w), eps=1e-6))

    # adaLN modulation x·(1+scale)+shift, the +1-folded x·scale+shift, and the gated residual add.
    x, shift, scale = randn(2, 5, 32), randn(2, 32, scale=0.5), randn(2, 32, scale=0.5)
    put("modulate.diffusers", x=x, shift=shift, scale=scale, out=x * (1 + scale[:, None]) + shift[:, None])
    put("modulate.folded", x=x, shift=shift, scale=scale, out=x * scale[:, None] + shift[:, None])
    h, gate, y = randn(2, 5, 32), randn(2, 32), randn(2, 5, 32)
    put("gated_add.plain", residual=h, gate=gate, y=y, out=h + gate[:, None] * y)
    x, shift, scale = bf16(randn(2, 4, 32)), bf16(randn(2, 32, scale=0.5)), bf16(randn(2, 32, scale=0.5))
    put("modulate.diffusers_bf16", x=x, shift=shift, scale=scale,
        out=up(x) * (1 + up(scale)[:, None]) + up(shift)[:, None])

    # Activations.
    x = randn(600, scale=4.0)
    put("gelu_tanh.plain", x=x, out=F.gelu(x, approximate="tanh"))
    put("silu.plain", x=x, out=F.silu(x))
    x = bf16(randn(256, scale=4.0))
    put("gelu_tanh.plain_bf16", x=x, out=F.gelu(up(x), approximate="tanh"))

    # FLUX RoPE: 4 text tokens at 0, an image grid, and some large positions (angles far from 0).
    grid = [(0.0, r, c) for r in range(2) for c in range(3)]
    ids = torch.tensor([(0.0, 0.0, 0.0)] * 4 + grid + [(0.0, 127.0, 95.0), (1.0, 64.0, 3.0)], dtype=torch.float32)
    cos, sin = FluxPosEmbed(theta=10000, axes_dim=[16, 56, 56])(ids)
    x = randn(2, ids.shape[0], 2, 128)
    put("rope.flux", ids=ids, cos=cos, sin=sin, x=x, out=apply_rotary_emb(x, (cos, sin), sequence_dim=1))

    # Attention: head dim 64 (cross lengths), head dim 128 with a key-padding mask, and a bf16 case.
    q, k, v = randn(2, 9, 2, 64), randn(2, 13, 2, 64, scale=0.7), randn(2, 13, 2, 64)
    put("attention.d64", query=q, key=k, value=v, out=attention(q, k, v))
    q, k, v = randn(2, 5, 1, 128), randn(2, 11, 1, 128), randn(2, 11, 1, 128)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[0, 8:] = False
    mask[1, ::3] = False
    put("attention.d128_masked", query=q, key=k, value=v, mask=mask, out=attention(q, k, v, mask))
    q, k, v = bf16(randn(1, 5, 2, 64)), bf16(randn(1, 6, 2, 64)), bf16(randn(1, 6, 2, 64))
    put("attention.d64_bf16", query=q, key=k, value=v, out=attention(up(q), up(k), up(v)))
    return tensors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    tensors = build_cases()
    save_file(tensors, args.output, metadata={"generator": "scripts/parity/make_op_fixtures.py", "seed": str(args.seed),
                                             "torch": torch.__version__})
    print(f"wrote {len(tensors)} tensors, {os.path.getsize(args.output)} bytes to {args.output}")


if __name__ == "__main__":
    main()
