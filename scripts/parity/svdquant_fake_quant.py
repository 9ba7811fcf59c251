"""Fake-quantized SVDQuant W4A4 layers for the diffusers reference: activations quantized the way Nunchaku's kernels
do (research/nunchaku-internals.md §3.2), everything else in fp32.

    x̂ = x / smooth                         (unsigned INT4 layers: (x + 0.171875) / smooth)
    per row and group of G inputs: amax = max|x̂|
      INT4 : scale = amax / 7 (unsigned: / 15); q = clamp(round_half_even(x̂ / scale), −8, 7) (unsigned: 0…15)
      NVFP4: scale = min(amax / 6, 448); q = E2M1 round-to-nearest-even of x̂ / scale, saturated at ±6;
             the product uses scale rounded to float8 e4m3 (the kernel inverts the unrounded scale)
    y = (q · scale) · residualᵀ + (x · proj_down) · proj_upᵀ + bias      (residual = dequantized 4-bit weight)

Compared with the dequantize-and-multiply reference this isolates the 4-bit activation rounding; compared with
swift-nunchaku's kernel-exact layers it differs only by their 16-bit rounding points (16-bit inputs and outputs,
INT4 16-bit accumulation).
"""
import numpy as np
import torch

import svdquant_unpack as unpack

E2M1_GRID = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=torch.float32)


def round_e2m1(values):
    """Round to the E2M1 grid, ties to the even code, saturating at ±6."""
    magnitude = values.abs().clamp(max=6)
    upper = torch.searchsorted(E2M1_GRID, magnitude.contiguous()).clamp(max=7)
    lower = (upper - 1).clamp(min=0)
    low, high = E2M1_GRID[lower], E2M1_GRID[upper]
    pick_high = (high - magnitude < magnitude - low) | ((high - magnitude == magnitude - low) & (upper % 2 == 0))
    return torch.where(pick_high, high, low) * values.sign()


def quantize_activations(x, smooth, precision, unsigned):
    """The dequantized 4-bit activations (q · scale) of fp32 rows `x` [M, K]."""
    shifted = (x + unpack.UNSIGNED_SHIFT) if unsigned else x
    smoothed = shifted / smooth
    group = 64 if precision == "int4" else 16
    grouped = smoothed.reshape(x.shape[0], -1, group)
    amax = grouped.abs().amax(dim=-1, keepdim=True)
    if precision == "int4":
        scale = amax / (15 if unsigned else 7)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        codes = torch.round(grouped / safe).clamp(0 if unsigned else -8, 15 if unsigned else 7)
        result = codes * scale
    else:
        scale = (amax / 6).clamp(max=448)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        result = round_e2m1(grouped / safe) * scale.to(torch.float8_e4m3fn).float()
    return result.reshape(x.shape)


class FakeQuantLinear(torch.nn.Module):
    """One W4A4 layer (or a slice of its output rows) with fake-quantized activations."""

    def __init__(self, canonical, precision, unsigned, half, rows=None):
        super().__init__()
        residual, smooth, down, up, bias = unpack.w4a4_parts(canonical, precision, half)
        rows = rows or slice(0, residual.shape[0])
        tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float()  # noqa: E731
        self.residual, self.up, self.bias = tensor(residual[rows]), tensor(up[rows]), tensor(bias[rows])
        self.smooth, self.down = tensor(smooth), tensor(down)
        self.precision, self.unsigned = precision, unsigned

    def forward(self, x):
        rows = x.reshape(-1, x.shape[-1]).float()
        quantized = quantize_activations(rows, self.smooth, self.precision, self.unsigned)
        y = quantized @ self.residual.T + (rows @ self.down) @ self.up.T + self.bias
        return y.reshape(*x.shape[:-1], -1).to(x.dtype)


class SplitInputLinear(torch.nn.Module):
    """FLUX single-block proj_out as Nunchaku stores it: out_proj on the attention columns + mlp_fc2 on the rest."""

    def __init__(self, attention, mlp, split):
        super().__init__()
        self.attention, self.mlp, self.split = attention, mlp, split

    def forward(self, x):
        return self.attention(x[..., :self.split]) + self.mlp(x[..., self.split:])


def install(model, layers, config, precision, half):
    """Replaces every W4A4-backed linear of a diffusers FluxTransformer2DModel; `layers(name)` gives a layer's
    canonical tensors by Nunchaku name."""
    d = config["num_attention_heads"] * config["attention_head_dim"]
    unsigned = precision == "int4"

    def put(path, module):
        parent, _, child = path.rpartition(".")
        setattr(model.get_submodule(parent), child, module)

    def fused(prefix, name, parts):
        canonical = layers(name)
        for index, part in enumerate(parts):
            put(f"{prefix}.attn.{part}", FakeQuantLinear(canonical, precision, False, half, slice(index * d, (index + 1) * d)))

    for i in range(config["num_layers"]):
        p = f"transformer_blocks.{i}"
        fused(p, f"{p}.qkv_proj", ("to_q", "to_k", "to_v"))
        fused(p, f"{p}.qkv_proj_context", ("add_q_proj", "add_k_proj", "add_v_proj"))
        for path, name, after_gelu in ((f"{p}.attn.to_out.0", "out_proj", False), (f"{p}.attn.to_add_out", "out_proj_context", False),
                                       (f"{p}.ff.net.0.proj", "mlp_fc1", False), (f"{p}.ff.net.2", "mlp_fc2", True),
                                       (f"{p}.ff_context.net.0.proj", "mlp_context_fc1", False),
                                       (f"{p}.ff_context.net.2", "mlp_context_fc2", True)):
            put(path, FakeQuantLinear(layers(f"{p}.{name}"), precision, after_gelu and unsigned, half))
    for i in range(config["num_single_layers"]):
        p = f"single_transformer_blocks.{i}"
        fused(p, f"{p}.qkv_proj", ("to_q", "to_k", "to_v"))
        put(f"{p}.proj_mlp", FakeQuantLinear(layers(f"{p}.mlp_fc1"), precision, False, half))
        put(f"{p}.proj_out", SplitInputLinear(FakeQuantLinear(layers(f"{p}.out_proj"), precision, False, half),
                                              FakeQuantLinear(layers(f"{p}.mlp_fc2"), precision, unsigned, half), d))
