#!/usr/bin/env bash
# Installs what the tests and the CPU/GPU tooling need on a fresh Debian/Ubuntu machine with Swift 6.
# Idempotent; safe to run again. Needs root (or sudo) for apt-get, and network access to Debian and PyPI only.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

# LAPACK for the quantizer's SVD (dlopen'ed at run time; the package builds without it).
if ! ldconfig -p 2>/dev/null | grep -q 'liblapacke\.so'; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq liblapacke libopenblas0 >/dev/null
fi

# Python packages for interop tests (safetensors files and PNGs read back by the reference libraries) and
# NVRTC + CUDA headers so the kernel compile test runs on machines without a GPU.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r scripts/requirements-test.txt
