#!/usr/bin/env bash
# The GPU-machine run that trains models/flux-shapes (docs/demo.md). From the repository root:
#   scripts/demo/device_train.sh SITE.tar.xz [train.py options…]
# SITE.tar.xz: the diffusers 0.42.1, importlib_metadata and zipp wheels (`pip download --no-deps`) unpacked into one
# folder and archived (a third of the wheels' size; the GPU machine has PyTorch and transformers but no diffusers). The tokenizers are the shipped ones (build_tokenizers.py
# makes the same files). Writes to $OUT: train.log, samples.png (diffusers' FluxPipeline on the exported folder) and
# the exported folder plus the calibration inputs as a tar split into 15 MiB parts (cat flux-shapes.tar.part-* | tar -xf -).
set -o pipefail
site=${1:?usage: device_train.sh SITE.tar.xz [train.py options]}; shift
mkdir -p /tmp/site && tar -xJf "$site" -C /tmp/site || exit 1
export PYTHONPATH=/tmp/site:$PWD/scripts/demo PYTHONUNBUFFERED=1
python3 scripts/demo/train.py --tokenizers models/flux-shapes --out /tmp/flux-shapes --samples "$OUT/samples.png" \
    --log "$OUT/train.log" "$@" || exit 1
tar -C /tmp -cf - flux-shapes calibration | split -b 15m - "$OUT/flux-shapes.tar.part-"
ls -la "$OUT"
