#!/usr/bin/env python3
"""Schedules and Euler steps of diffusers' FlowMatchEulerDiscreteScheduler, driven exactly as FluxPipeline drives it.

Writes Tests/PipelinesTests/Fixtures/scheduler.json. Float32 values are stored as their IEEE bit patterns so the
Swift test can demand bitwise equality (the task's bar is 1e-6; bitwise is what we get).

  schedules: FLUX.1-dev (dynamic exponential shift), FLUX.1-schnell (no shift), a constant shift of 3 and a linear
             time shift, for several step counts and image sizes. The pipeline's own `calculate_shift` gives mu and
             `retrieve_timesteps` calls `set_timesteps(sigmas=linspace(1, 1/N, N), mu=mu)`.
  steps:     `scheduler.step` on random samples for float32 and bfloat16 model outputs.

Run with the reference venv: /work/pyref/bin/python scripts/parity/pipeline_scheduler_fixtures.py
"""
import json
import os

import diffusers
import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "PipelinesTests", "Fixtures", "scheduler.json")

CONFIGS = {
    "flux-dev": dict(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                     base_image_seq_len=256, max_image_seq_len=4096),
    "flux-schnell": dict(shift=1.0, use_dynamic_shifting=False, base_shift=0.5, max_shift=1.15,
                         base_image_seq_len=256, max_image_seq_len=4096),
    "shift-3": dict(shift=3.0, use_dynamic_shifting=False),
    "linear": dict(use_dynamic_shifting=True, time_shift_type="linear", base_shift=0.5, max_shift=1.15),
}
STEPS = [1, 2, 4, 8, 20, 28, 50]
SIZES = [(256, 256), (512, 512), (768, 1360), (1024, 1024), (1440, 2048)]


def bits(tensor):
    return tensor.detach().to(torch.float32).contiguous().view(torch.int32).numpy().astype(np.uint32).tolist()


def schedule(name, config, steps, height, width):
    scheduler = FlowMatchEulerDiscreteScheduler(**config)
    image_seq_len = (height // 16) * (width // 16)
    mu = calculate_shift(image_seq_len, scheduler.config.get("base_image_seq_len", 256),
                         scheduler.config.get("max_image_seq_len", 4096), scheduler.config.get("base_shift", 0.5),
                         scheduler.config.get("max_shift", 1.15))
    sigmas = np.linspace(1.0, 1 / steps, steps)
    retrieve_timesteps(scheduler, steps, "cpu", sigmas=sigmas, mu=mu)
    return {"config": name, "steps": steps, "height": height, "width": width, "image_seq_len": image_seq_len,
            "mu": mu, "sigmas": bits(scheduler.sigmas), "timesteps": bits(scheduler.timesteps)}


def step_case(dtype, index):
    scheduler = FlowMatchEulerDiscreteScheduler(**CONFIGS["flux-dev"])
    retrieve_timesteps(scheduler, 28, "cpu", sigmas=np.linspace(1.0, 1 / 28, 28), mu=1.15)
    scheduler.set_begin_index(index)
    generator = torch.Generator().manual_seed(index)
    sample = torch.randn(256, generator=generator).to(dtype)
    velocity = torch.randn(256, generator=generator).to(dtype)
    out = scheduler.step(velocity, scheduler.timesteps[index], sample, return_dict=False)[0]
    assert out.dtype == dtype
    return {"dtype": {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}[dtype], "index": index,
            "sample": bits(sample), "velocity": bits(velocity), "expected": bits(out)}


def main():
    schedules = [schedule(name, config, steps, h, w)
                 for name, config in CONFIGS.items() for steps in STEPS for (h, w) in SIZES]
    steps = [step_case(dtype, index) for dtype in (torch.float32, torch.bfloat16, torch.float16) for index in (0, 13, 27)]
    with open(OUT, "w") as f:
        json.dump({"diffusers": diffusers.__version__, "torch": torch.__version__, "schedules": schedules,
                   "steps": steps}, f, separators=(",", ":"))
    print(f"{len(schedules)} schedules, {len(steps)} steps -> {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
