#!/usr/bin/env python3
"""FluxPipeline's latent packing, unpacking and position ids, written to Tests/PipelinesTests/Fixtures/latents.json.

The input is `arange` so every element is an exact small integer: the Swift test compares exactly. Cases cover the
pixel sizes' latent geometry (prepare_latents: 2*(H//16) x 2*(W//16)), `_pack_latents`, `_unpack_latents` and
`_prepare_latent_image_ids`.

Run with the reference venv: /work/pyref/bin/python scripts/parity/pipeline_latent_fixtures.py
"""
import json
import os

import diffusers
import torch
from diffusers import FluxPipeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "PipelinesTests", "Fixtures", "latents.json")

SIZES = [(96, 160), (48, 48), (100, 70), (1024, 1024), (768, 1360)]


def case(height, width, batch):
    latent_h, latent_w = 2 * (height // 16), 2 * (width // 16)
    entry = {"height": height, "width": width, "batch": batch, "latent_shape": [batch, 16, latent_h, latent_w]}
    ids = FluxPipeline._prepare_latent_image_ids(batch, latent_h // 2, latent_w // 2, "cpu", torch.float32)
    entry["image_ids_shape"] = list(ids.shape)
    if latent_h * latent_w <= 300:
        latents = torch.arange(batch * 16 * latent_h * latent_w, dtype=torch.float32).reshape(batch, 16, latent_h, latent_w)
        packed = FluxPipeline._pack_latents(latents, batch, 16, latent_h, latent_w)
        unpacked = FluxPipeline._unpack_latents(packed, height, width, 8)
        assert torch.equal(unpacked, latents)
        entry["packed_shape"] = list(packed.shape)
        entry["packed"] = [int(v) for v in packed.flatten().tolist()]
        entry["image_ids"] = [int(v) for v in ids.flatten().tolist()]
    return entry


def main():
    cases = [case(h, w, batch) for (h, w) in SIZES for batch in (1, 2)]
    with open(OUT, "w") as f:
        json.dump({"diffusers": diffusers.__version__, "cases": cases}, f, separators=(",", ":"))
    print(f"{len(cases)} cases -> {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
