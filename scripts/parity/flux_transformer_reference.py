#!/usr/bin/env python3
"""Reference outputs of diffusers' FluxTransformer2DModel with random weights, for parity tests of the Swift model.

Builds a FluxTransformer2DModel from a config, fills every parameter with deterministic pseudo-random values (see
`generated_weight` below: no parameter keeps a constant init such as the all-ones qk-norm weights), runs one forward
in fp32 (and in bf16), and writes:

  * a fixture (`--fixture PATH`): the forward inputs under diffusers' argument names (`hidden_states`,
    `encoder_hidden_states`, `pooled_projections`, `timestep`, `guidance` when the model embeds it, `img_ids`,
    `txt_ids`), the fp32 output `sample` and the bf16 run's output `sample_bf16` (stored fp32), plus metadata:
    `config` (the diffusers config.json text) and `weights` (JSON list of [name, shape, offset, scale]) from which
    the Swift test regenerates the exact weights. Weights are not stored, which keeps fixtures a few KB.
  * optionally (`--model-dir DIR`) a diffusers-layout model folder `DIR/transformer/` (config.json +
    diffusion_pytorch_model.safetensors, fp32 weights) with the inputs and outputs beside it
    (`DIR/inputs.safetensors`; `DIR/outputs.safetensors` holding `sample` and `sample_bf16`), for
    `nunchaku run-transformer --model DIR --inputs DIR/inputs.safetensors --compare DIR/outputs.safetensors`.

The generator: for a tensor called `name` with n elements, element i (row-major) is
    u_i    = splitmix64(fnv1a64(name) XOR seed, i) >> 40          (a 24-bit integer)
    value  = float32(offset + scale * (u_i / 2**23 - 1))         (computed in float64)
with splitmix64(state, i) = mix(state + (i + 1) * 0x9E3779B97F4A7C15) (Steele et al.), so the Swift side reproduces
every weight bit for bit. `scale` is a power of two, so values are exact.

Usage: /work/pyref/bin/python scripts/parity/flux_transformer_reference.py --variant all
       /work/pyref/bin/python scripts/parity/flux_transformer_reference.py --variant dev --full-size --model-dir /tmp/flux-full
"""
import argparse
import copy
import json
import math
import os

import numpy as np
import torch
import diffusers
from diffusers import FluxTransformer2DModel
from safetensors.torch import save_file

from seeded_weights import generated_weight

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures")

# Small models: 2 double + 2 single blocks. dev: head dim 64; schnell: no guidance, head dim 32;
# canny: in_channels 128 (Depth/Canny control), one head of the real width 128 with the real RoPE axes.
TINY_CONFIGS = {
    "dev": dict(patch_size=1, in_channels=64, num_layers=2, num_single_layers=2, attention_head_dim=64,
                num_attention_heads=2, joint_attention_dim=48, pooled_projection_dim=32, guidance_embeds=True,
                axes_dims_rope=[8, 28, 28]),
    "schnell": dict(patch_size=1, in_channels=64, num_layers=2, num_single_layers=2, attention_head_dim=32,
                    num_attention_heads=2, joint_attention_dim=40, pooled_projection_dim=24, guidance_embeds=False,
                    axes_dims_rope=[4, 14, 14]),
    "canny": dict(patch_size=1, in_channels=128, out_channels=64, num_layers=2, num_single_layers=2,
                  attention_head_dim=128, num_attention_heads=1, joint_attention_dim=32, pooled_projection_dim=32,
                  guidance_embeds=True, axes_dims_rope=[16, 56, 56]),
}
FULL_CONFIG = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                   num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                   axes_dims_rope=[16, 56, 56])

def weight_rule(name, shape):
    """(offset, scale) per parameter: qk-norm weights around 1, biases small, matrices ~ 1/sqrt(fan_in)."""
    if ".norm_" in name and name.endswith(".weight") and len(shape) == 1:
        return 1.0, 0.25
    if len(shape) == 1:
        return 0.0, 0.125
    return 0.0, 2.0 ** -math.floor(math.log2(math.sqrt(shape[1])))


def make_inputs(config, batch, text_tokens, grid, generator):
    height, width = grid
    image_tokens = height * width
    inputs = {
        "hidden_states": torch.randn(batch, image_tokens, config["in_channels"], generator=generator),
        "encoder_hidden_states": torch.randn(batch, text_tokens, config["joint_attention_dim"], generator=generator),
        "pooled_projections": torch.randn(batch, config["pooled_projection_dim"], generator=generator),
        "timestep": torch.linspace(0.9, 0.25, batch),
        "img_ids": torch.tensor([(0.0, r, c) for r in range(height) for c in range(width)], dtype=torch.float32),
        "txt_ids": torch.zeros(text_tokens, 3),
    }
    if config.get("guidance_embeds"):
        inputs["guidance"] = torch.linspace(3.5, 1.0, batch)
    return inputs


def run(model, inputs, dtype):
    """One forward with weights and float inputs cast to `dtype` (on a copy: the model keeps its fp32 weights)."""
    cast = {k: (v.to(dtype) if k not in ("img_ids", "txt_ids") else v) for k, v in inputs.items()}
    with torch.no_grad():
        return copy.deepcopy(model).to(dtype)(**cast, return_dict=False)[0].float()


def build(variant, full_size, seed, torch_init):
    config = dict(FULL_CONFIG if full_size else TINY_CONFIGS[variant])
    if full_size:
        config["guidance_embeds"] = variant != "schnell"
    model = FluxTransformer2DModel(**config).eval()
    spec = []
    state = {}
    for name, parameter in model.state_dict().items():
        shape = list(parameter.shape)
        offset, scale = weight_rule(name, shape)
        spec.append([name, shape, offset, scale])
        if torch_init:
            # Full-size runs: default init, constant parameters (qk norms) re-randomized around their value.
            if bool((parameter == parameter.flatten()[0]).all()):
                parameter = parameter + 0.1 * torch.randn_like(parameter)
            state[name] = parameter
        else:
            state[name] = generated_weight(name, shape, offset, scale, seed)
    model.load_state_dict(state, strict=True)
    return model, config, spec


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=sorted(TINY_CONFIGS) + ["all"], default="all")
    parser.add_argument("--full-size", action="store_true", help="the real FLUX.1 size (needs ~100 GB of RAM in fp32)")
    parser.add_argument("--seed", type=int, default=2024, help="weight generator seed")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--text-tokens", type=int, default=5)
    parser.add_argument("--grid", type=int, nargs=2, default=[3, 4], metavar=("H", "W"), help="image token grid")
    parser.add_argument("--fixture", help="fixture path (default: Tests/ModelsTests/Fixtures/flux-<variant>.safetensors)")
    parser.add_argument("--model-dir", help="also write a diffusers model folder with inputs/outputs here")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    diffusers.utils.logging.set_verbosity_error()

    variants = sorted(TINY_CONFIGS) if args.variant == "all" else [args.variant]
    for variant in variants:
        model, config, spec = build(variant, args.full_size, args.seed, torch_init=args.full_size)
        generator = torch.Generator().manual_seed(args.seed + 1)
        inputs = make_inputs(config, args.batch, args.text_tokens, tuple(args.grid), generator)
        sample = run(model, inputs, torch.float32)
        sample_bf16 = run(model, inputs, torch.bfloat16)
        relative = ((sample_bf16 - sample).norm() / sample.norm()).item()
        print(f"{variant}: sample {tuple(sample.shape)}, |sample| rms {sample.pow(2).mean().sqrt():.4f}, "
              f"bf16 vs fp32 relative error {relative:.3e}")

        config_json = json.dumps(dict(model.config), default=list)
        if not args.full_size:
            path = args.fixture or os.path.join(FIXTURES, f"flux-{variant}.safetensors")
            tensors = {k: v.contiguous() for k, v in inputs.items()}
            tensors["sample"] = sample.contiguous()
            tensors["sample_bf16"] = sample_bf16.contiguous()
            metadata = {"config": config_json, "weights": json.dumps(spec), "seed": str(args.seed),
                        "generator": "scripts/parity/flux_transformer_reference.py",
                        "torch": torch.__version__, "diffusers": diffusers.__version__}
            save_file(tensors, path, metadata=metadata)
            print(f"  wrote {path} ({os.path.getsize(path)} bytes)")
        if args.model_dir:
            folder = args.model_dir if len(variants) == 1 else os.path.join(args.model_dir, variant)
            model.save_pretrained(os.path.join(folder, "transformer"), safe_serialization=True)
            save_file({k: v.contiguous() for k, v in inputs.items()}, os.path.join(folder, "inputs.safetensors"))
            save_file({"sample": sample.contiguous(), "sample_bf16": sample_bf16.contiguous()},
                      os.path.join(folder, "outputs.safetensors"))
            print(f"  wrote model folder {folder}")


if __name__ == "__main__":
    main()
