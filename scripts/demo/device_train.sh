#!/usr/bin/env bash
# The GPU-machine run that trained models/flux-shapes (docs/demo.md). Run from a folder holding:
#   demo/  (scenes.py, train.py, heldout_prompts.json)   tok/  (build_tokenizers.py output)
#   whl/   (diffusers 0.42.1 and importlib_metadata wheels, `pip download --no-deps`; the machine has no diffusers)
# Writes to $OUT: train.log, samples.png (diffusers' FluxPipeline on the exported folder) and the exported folder plus
# the calibration inputs as a tar split into 15 MiB parts (cat flux-shapes.tar.part-* | tar -xf -).
set -o pipefail
cd "$(dirname "$0")"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/demo PYTHONUNBUFFERED=1
common="--tokenizers tok --out /tmp/flux-shapes --samples $OUT/samples.png --vae-cache /tmp/vae.pt"
python3 demo/train.py $common --log "$OUT/train.log" \
 || { echo "=== bf16 run failed: fp32 fallback ==="; python3 demo/train.py $common --precision fp32 --log "$OUT/train-fp32.log"; }
tar -C /tmp -cf - flux-shapes calibration | split -b 15m - "$OUT/flux-shapes.tar.part-"
ls -la "$OUT"
