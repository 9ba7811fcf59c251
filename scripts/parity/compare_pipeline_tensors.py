#!/usr/bin/env python3
"""Compares `nunchaku generate --save-tensors` output with flux_pipeline_reference.py's diffusers tensors.

Prints, per stage (prompt_embeds, pooled_prompt_embeds, noise, latents, image), max|ours − ref| / max|ref| against
diffusers' fp32 run and against its bf16 run, and the 8-bit image PSNR against both runs' images; beside them the
same figures for diffusers' bf16 run against its fp32 run (a bf16 pipeline should be judged against the bf16 run). Needs only
numpy (on the GPU machine too). Exits 1 when a stage is missing or a shape differs.

The end-to-end check on the GPU (no torch needed there):
  here:  /work/pyref/bin/python scripts/parity/flux_pipeline_reference.py --gpu-sizes --folder F --output R
  there: nunchaku generate --model F --device cuda --seed 2026 --steps 3 --guidance 3.5 --width 48 --height 32 \
             --batch 2 --max-sequence-length 16 --prompt "<prompt 1>" --prompt "<prompt 2>" --save-tensors OURS
         python3 scripts/parity/compare_pipeline_tensors.py OURS R
(prompts: SETTINGS in flux_pipeline_reference.py; they are also in R's metadata, key `settings`).
"""
import json
import math
import sys

import struct

import numpy as np

STAGES = ["prompt_embeds", "pooled_prompt_embeds", "noise", "latents", "image"]
DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def read(path):
    """All tensors of a safetensors file as float64/int arrays (bf16 widened exactly), and its metadata."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[8 + length + begin:8 + length + end]
        if info["dtype"] == "BF16":
            values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            values = np.frombuffer(raw, dtype=np.dtype(DTYPES[info["dtype"]]).newbyteorder("<"))
        tensors[name] = values.reshape(info["shape"])
    return tensors, metadata


def relative(ours, ref):
    scale = float(np.abs(ref).max())
    return float(np.abs(ours - ref).max()) / scale if scale > 0 else float(np.abs(ours).max())


def to_u8(image):
    """diffusers' VaeImageProcessor: [-1, 1] → [0, 1], clamp, ×255, round."""
    return np.round(np.clip(image / 2 + 0.5, 0, 1) * 255)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ours, _ = read(sys.argv[1])
    ref, metadata = read(sys.argv[2])
    if "settings" in metadata:
        print("settings:", json.loads(metadata["settings"]))
    failed = False
    for stage in STAGES:
        if stage not in ours or stage not in ref:
            print(f"{stage}: missing in {'ours' if stage not in ours else 'the reference'}")
            failed = True
            continue
        mine = ours[stage].astype(np.float64)
        if mine.shape != ref[stage].shape:
            print(f"{stage}: shape {mine.shape} vs reference {ref[stage].shape}")
            failed = True
            continue
        fp32 = ref[stage].astype(np.float64)
        line = f"{stage:22s} vs fp32 {relative(mine, fp32):.2e}"
        if f"{stage}_bf16" in ref:
            bf16 = ref[stage + "_bf16"].astype(np.float64)
            line += f"   vs bf16 {relative(mine, bf16):.2e}   (diffusers bf16 vs fp32 {relative(bf16, fp32):.2e})"
        print(line)
    if "image" in ours and "image" in ref and ours["image"].shape == ref["image"].shape:
        mine = to_u8(ours["image"].astype(np.float64))
        line = f"8-bit image PSNR vs fp32: {psnr(mine, to_u8(ref['image'].astype(np.float64)))}"
        if "image_bf16" in ref:
            bf16 = to_u8(ref["image_bf16"].astype(np.float64))
            line += (f"   vs bf16: {psnr(mine, bf16)}"
                     f"   (diffusers bf16 vs fp32: {psnr(bf16, to_u8(ref['image'].astype(np.float64)))})")
        print(line)
    sys.exit(1 if failed else 0)


def psnr(a, b):
    """PSNR of two 8-bit images (as float arrays), formatted in dB."""
    mse = float(np.mean((a - b) ** 2))
    return "inf" if mse == 0 else f"{10 * math.log10(255 ** 2 / mse):.1f} dB"


if __name__ == "__main__":
    main()
