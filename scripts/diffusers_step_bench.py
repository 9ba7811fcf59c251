#!/usr/bin/env python3
"""The BF16 baseline of issue 9 on the machine at hand: diffusers' FluxTransformer2DModel at FLUX.1-dev's config
(19 double and 38 single blocks, width 3072, guidance embedding) with random weights in bf16, batch 1, 512 text
tokens, one transformer step at 512² (1024 image tokens) and 1024² (4096), eager and `torch.compile` (default
mode). Per size: 3 warm-up steps (the compiled model compiles in the first), then the median of `--steps` steps
timed with CUDA events, and the peak of `torch.cuda.max_memory_allocated`. `nunchaku bench step` times our steps the
same way (median of CUDA-event-timed steps), so the two can run in one call and be compared.

The weights are diffusers' own initialisation scaled down (normal, std 0.02) so the activations stay finite in
bf16; the step's speed does not depend on the values.
Needs torch with CUDA and diffusers: python3 scripts/diffusers_step_bench.py [--steps 10] [--sizes 512 1024]
[--no-compile] [--json PATH]"""
import argparse, json, statistics, time
import torch
from diffusers import FluxTransformer2DModel

FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=(16, 56, 56))
TEXT_TOKENS = 512


def inputs(image_tokens, device):
    side = int(image_tokens ** 0.5)
    image_ids = torch.zeros(side, side, 3, device=device)
    image_ids[..., 1] = torch.arange(side, device=device)[:, None]
    image_ids[..., 2] = torch.arange(side, device=device)[None, :]
    bf16 = dict(dtype=torch.bfloat16, device=device)
    return dict(hidden_states=torch.randn(1, image_tokens, 64, **bf16),
                encoder_hidden_states=torch.randn(1, TEXT_TOKENS, 4096, **bf16),
                pooled_projections=torch.randn(1, 768, **bf16),
                timestep=torch.full((1,), 0.5, **bf16), guidance=torch.full((1,), 3.5, **bf16),
                img_ids=image_ids.reshape(-1, 3), txt_ids=torch.zeros(TEXT_TOKENS, 3, device=device), return_dict=False)


def time_steps(model, arguments, steps):
    """Milliseconds per step: 3 warm-up steps, then the median of `steps` steps, each between two CUDA events."""
    with torch.inference_mode():
        for _ in range(3): model(**arguments)
        torch.cuda.synchronize()
        times = []
        for _ in range(steps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(); model(**arguments); end.record(); torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = FluxTransformer2DModel(**FLUX_DEV).to(device=device, dtype=torch.bfloat16).eval()
    with torch.no_grad():
        for parameter in model.parameters(): parameter.normal_(0, 0.02)
    modes = [("eager", model)] + ([] if args.no_compile else [("compile", torch.compile(model))])
    results = []
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, diffusers FluxTransformer2DModel (FLUX.1-dev config, bf16)")
    for size in args.sizes:
        arguments = inputs((size // 16) ** 2, device)
        for name, runner in modes:
            torch.cuda.reset_peak_memory_stats()
            began = time.time()
            ms = time_steps(runner, arguments, args.steps)
            peak = torch.cuda.max_memory_allocated() / 2 ** 30
            results.append(dict(size=size, mode=name, ms=ms, peak_gib=peak, wall_s=time.time() - began))
            print(f"{size}² {name}: {ms:.1f} ms per step (median of {args.steps}), peak {peak:.2f} GiB, {time.time() - began:.0f} s with warm-up", flush=True)
    if args.json:
        json.dump(dict(device=torch.cuda.get_device_name(), results=results), open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
