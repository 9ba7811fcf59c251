#!/usr/bin/env python3
"""Reference outputs of diffusers' AutoencoderKL decoder with random weights, for parity tests of the Swift VAE.

Builds small AutoencoderKL models from configs, fills every decoder parameter with deterministic pseudo-random values
(the generator of scripts/parity/flux_transformer_reference.py: element i of tensor `name` is
float32(offset + scale * (u_i / 2**23 - 1)) with u_i = splitmix64(fnv1a64(name) XOR seed, i) >> 40), decodes random
latents in fp32 and in bf16, and writes Tests/PipelinesTests/Fixtures/vae-<variant>.safetensors holding:

  * `latents`: the diffusion-space latents [B, C, h, w] (fp32);
  * `image`: `vae.decode(latents / scaling_factor + shift_factor).sample` in fp32, `image_bf16` the same run with
    bf16 weights and inputs (stored fp32);
  * metadata `config` (the diffusers config.json text), `weights` (JSON list of [name, shape, offset, scale]) and
    `seed`, from which the Swift test regenerates the exact decoder weights. Weights are not stored.

Variants: `flux` (the FLUX.1 VAE's shape at a small width: 16 latent channels, no post_quant_conv, shift factor) and
`sd` (post_quant_conv, 4 latent channels, 3 resnets per up block, no shift).

Usage: /work/pyref/bin/python scripts/parity/vae_reference.py
"""
import argparse
import copy
import json
import math
import os

import numpy as np
import torch
import diffusers
from diffusers import AutoencoderKL
from safetensors.torch import save_file

from seeded_weights import generated_weight

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "PipelinesTests", "Fixtures")

CONFIGS = {
    "flux": dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                 up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8, 16, 32, 32], layers_per_block=1,
                 latent_channels=16, norm_num_groups=4, scaling_factor=0.3611, shift_factor=0.1159,
                 use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=True),
    "sd": dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 3,
               up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[8, 16, 16], layers_per_block=2,
               latent_channels=4, norm_num_groups=4, scaling_factor=0.18215),
}
LATENT_GRID = {"flux": (2, 3, 4), "sd": (1, 5, 3)}  # batch, height, width

def weight_rule(name, shape):
    """(offset, scale): GroupNorm weights around 1, biases small, conv/linear weights ~ sqrt(3 / fan_in)."""
    if len(shape) == 1:
        return (1.0, 0.25) if "norm" in name and name.endswith(".weight") else (0.0, 0.125)
    fan_in = int(np.prod(shape[1:]))
    return 0.0, 2.0 ** -math.floor(math.log2(math.sqrt(fan_in / 3)))


def build(variant, seed):
    model = AutoencoderKL(**CONFIGS[variant]).eval()
    spec, state = [], {}
    for name, parameter in model.state_dict().items():
        if name.startswith(("encoder.", "quant_conv.")):
            state[name] = parameter  # the decoder never reads them; not part of the fixture
            continue
        shape = list(parameter.shape)
        offset, scale = weight_rule(name, shape)
        spec.append([name, shape, offset, scale])
        state[name] = generated_weight(name, shape, offset, scale, seed)
    model.load_state_dict(state, strict=True)
    return model, spec


def decode(model, latents, dtype):
    """The FluxPipeline / StableDiffusionPipeline decode step, on a copy cast to `dtype`."""
    cast = copy.deepcopy(model).to(dtype)
    z = latents.to(dtype) / cast.config.scaling_factor
    if cast.config.shift_factor is not None:
        z = z + cast.config.shift_factor
    with torch.no_grad():
        return cast.decode(z, return_dict=False)[0].float()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(os.cpu_count() or 1)
    diffusers.utils.logging.set_verbosity_error()
    os.makedirs(FIXTURES, exist_ok=True)
    for variant in sorted(CONFIGS):
        model, spec = build(variant, args.seed)
        batch, height, width = LATENT_GRID[variant]
        generator = torch.Generator().manual_seed(args.seed + 1)
        latents = torch.randn(batch, model.config.latent_channels, height, width, generator=generator)
        image = decode(model, latents, torch.float32)
        image_bf16 = decode(model, latents, torch.bfloat16)
        relative = ((image_bf16 - image).norm() / image.norm()).item()
        print(f"{variant}: image {tuple(image.shape)}, rms {image.pow(2).mean().sqrt():.4f}, "
              f"bf16 vs fp32 relative error {relative:.3e}")
        path = os.path.join(FIXTURES, f"vae-{variant}.safetensors")
        metadata = {"config": json.dumps(dict(model.config), default=list), "weights": json.dumps(spec),
                    "seed": str(args.seed), "generator": "scripts/parity/vae_reference.py",
                    "torch": torch.__version__, "diffusers": diffusers.__version__}
        save_file({"latents": latents.contiguous(), "image": image.contiguous(), "image_bf16": image_bf16.contiguous()},
                  path, metadata=metadata)
        print(f"  wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
