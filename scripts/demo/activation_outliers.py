"""Measures activation outliers in the inputs of a FLUX transformer's quantized layers (docs/demo.md).

Runs the diffusers transformer in float32 on the demo model's calibration inputs and prints, for every linear the
SVDQuant plan quantizes to W4A4, the largest per-channel max|x| over the median one and the relative error that
naive per-64-group INT4 RTN of the activations alone causes in the layer's output x·Wᵀ. With --factor, first applies the same exact reparameterization as
the engine's `OutlierChannels` (Sources/Quantizer/Ablation/OutlierChannels.swift), written independently here in
PyTorch, and prints how far its output moves from the original's (it computes the same function).

    python scripts/demo/activation_outliers.py                      # the shipped model
    python scripts/demo/activation_outliers.py --factor 16          # with 2 outlier channels × 16

Needs torch, diffusers 0.42 and safetensors (not CI: a development check).
"""

import argparse
import glob
import os

import torch
from diffusers import FluxTransformer2DModel
from safetensors.torch import load_file


def add_outlier_channels(model, factor, channels):
    """Channel c of every adaLN-modulated norm output and of v becomes `factor` times larger; readers compensate."""
    width = model.config.num_attention_heads * model.config.attention_head_dim

    def modulated(linear, shift_chunk, readers):
        for c in channels:
            shift, scale = shift_chunk * width + c, (shift_chunk + 1) * width + c
            linear.weight.data[shift] *= factor
            linear.bias.data[shift] *= factor
            linear.weight.data[scale] *= factor
            linear.bias.data[scale] = linear.bias.data[scale] * factor + factor - 1
            for reader in readers:
                reader.weight.data[:, c] /= factor

    def values(projections, readers):
        for c in channels:
            for projection in projections:
                projection.weight.data[c] *= factor
                projection.bias.data[c] *= factor
            for reader in readers:
                reader.weight.data[:, c] /= factor

    for block in model.transformer_blocks:
        a = block.attn
        modulated(block.norm1.linear, 0, [a.to_q, a.to_k, a.to_v])
        modulated(block.norm1.linear, 3, [block.ff.net[0].proj])
        modulated(block.norm1_context.linear, 0, [a.add_q_proj, a.add_k_proj, a.add_v_proj])
        modulated(block.norm1_context.linear, 3, [block.ff_context.net[0].proj])
        values([a.to_v, a.add_v_proj], [a.to_out[0], a.to_add_out])
    for block in model.single_transformer_blocks:
        a = block.attn
        modulated(block.norm.linear, 0, [a.to_q, a.to_k, a.to_v, block.proj_mlp])
        values([a.to_v], [block.proj_out])


def group_rtn(x, unsigned, group=64):
    """INT4 round-to-nearest per group of `group` channels: signed (-8…7), or unsigned (0…15) for x ≥ 0."""
    groups = x.reshape(x.shape[0], -1, group)
    low, high = (0, 15) if unsigned else (-8, 7)
    step = groups.abs().amax(-1, keepdim=True).clamp_min(1e-12) / (15 if unsigned else 7)
    return ((groups / step).round().clamp(low, high) * step).reshape_as(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/flux-shapes")
    parser.add_argument("--factor", type=float, default=None, help="outlier channels this many times larger")
    parser.add_argument("--channels", type=int, default=2, help="how many outlier channels, spread over the width")
    args = parser.parse_args()

    load = lambda: FluxTransformer2DModel.from_pretrained(os.path.join(args.model, "transformer"),
                                                          torch_dtype=torch.float32).eval()
    model = load()
    width = model.config.num_attention_heads * model.config.attention_head_dim
    inputs = [load_file(f) for f in sorted(glob.glob(os.path.join(args.model, "calibration", "*.safetensors")))]
    inputs = [{k: v.float() for k, v in d.items()} for d in inputs]
    run = lambda m, d: m(**d, return_dict=False)[0]
    if args.factor:
        channels = [i * width // args.channels + width // (2 * args.channels) for i in range(args.channels)]
        add_outlier_channels(model, args.factor, channels)
        original = load()
        with torch.no_grad():
            moved = max(float((run(model, d) - run(original, d)).norm() / run(original, d).norm()) for d in inputs)
        print(f"outlier channels {channels} x {args.factor:g}: output moved by at most {moved:.2e} (relative)")

    recorded = {}
    for name, module in model.named_modules():
        quantized = isinstance(module, torch.nn.Linear) and "transformer_blocks" in name and ".norm" not in name
        if quantized:
            module.register_forward_hook(
                lambda m, i, o, name=name: recorded.setdefault(name, []).append(i[0].reshape(-1, i[0].shape[-1])))
    with torch.no_grad():
        for d in inputs:
            run(model, d)
    modules = dict(model.named_modules())
    print(f"{'layer input':45s} {'K':>5s} {'max/median channel':>19s} {'output error, INT4 RTN x':>25s}")
    ratios = []
    for name, parts in recorded.items():
        x = torch.cat(parts)
        peaks = x.abs().amax(0)
        ratio = float(peaks.max() / peaks.median())
        ratios.append(ratio)
        # Post-GELU inputs (GELU ≥ -0.17): the runtime shifts them by 0.171875 and quantizes them unsigned.
        shift = 0.171875 if x.min() >= -0.171875 else 0.0
        weight = modules[name].weight.detach()
        rounded = group_rtn(x + shift, unsigned=shift > 0) - shift
        error = float(((rounded - x) @ weight.T).norm() / (x @ weight.T).norm())
        print(f"{name:45s} {x.shape[1]:5d} {ratio:19.1f} {error:25.3f}")
    print(f"largest channel / median channel: {min(ratios):.1f} to {max(ratios):.1f} over {len(ratios)} layer inputs")


if __name__ == "__main__":
    main()
