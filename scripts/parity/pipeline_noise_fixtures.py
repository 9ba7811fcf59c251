#!/usr/bin/env python3
"""What `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=dtype)` returns, for both
PyTorch CPU kernels, written to Tests/PipelinesTests/Fixtures/noise.json.

PyTorch's CPU `normal_` runs a vectorized Box-Muller in its AVX2 build and a libm-based loop in every other build
(AVX-512 machines, ARM, ATEN_CPU_CAPABILITY=default); the results differ in the last bits. Each kernel is captured in
a subprocess with ATEN_CPU_CAPABILITY set (avx2 needs an AVX2 machine; the script checks the capability took).

Per case: the first and last 8 values (IEEE bits of the dtype) and an FNV-1a 64 hash of all the values' bits, plus
draw sequences that reuse one generator (the cached second Box-Muller value of the double sampler).

Run with the reference venv: /work/pyref/bin/python scripts/parity/pipeline_noise_fixtures.py
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "PipelinesTests", "Fixtures", "noise.json")

CASES = [
    # FLUX latents: 1024x1024, 512x512, 1360x768 (diffusers: [B, 16, 2*(H//16), 2*(W//16)])
    (0, [1, 16, 128, 128], "float32"), (42, [1, 16, 128, 128], "float32"), (1234567, [1, 16, 64, 64], "float32"),
    (0, [1, 16, 128, 128], "bfloat16"), (7, [1, 16, 96, 170], "bfloat16"), (7, [1, 16, 96, 170], "float32"),
    (2**40 + 5, [2, 16, 32, 32], "float16"),
    # lengths that are not multiples of 16, and the short (< 16) path
    (3, [1000], "float32"), (3, [1000], "bfloat16"), (11, [17], "float32"), (11, [33], "float16"),
    (5, [15], "float32"), (5, [1], "float32"), (5, [3, 5], "bfloat16"), (9, [0], "float32"),
    (8, [100], "float64"), (8, [7], "float64"),
]
SEQUENCES = [(21, [3, 5, 16, 2]), (22, [20, 7, 1])]

CAPTURE = r'''
import json, sys, torch
cases, sequences = json.loads(sys.argv[1])
def fnv(values):
    h = 0xcbf29ce484222325
    for v in values:
        h ^= v
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h
def bits(t):
    width = {torch.float32: (torch.int32, 0xFFFFFFFF), torch.float64: (torch.int64, 0xFFFFFFFFFFFFFFFF),
             torch.bfloat16: (torch.int16, 0xFFFF), torch.float16: (torch.int16, 0xFFFF)}[t.dtype]
    return [int(v) & width[1] for v in t.contiguous().view(width[0]).flatten().tolist()]
out = {"capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__, "cases": [], "sequences": []}
for seed, shape, dtype in cases:
    t = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=getattr(torch, dtype))
    b = bits(t)
    out["cases"].append({"seed": seed, "shape": shape, "dtype": dtype, "head": [str(v) for v in b[:8]], "tail": [str(v) for v in b[-8:]], "fnv": str(fnv(b))})
for seed, counts in sequences:
    g = torch.Generator("cpu").manual_seed(seed)
    out["sequences"].append({"seed": seed, "counts": counts, "values": [bits(torch.randn(n, generator=g)) for n in counts]})
print(json.dumps(out))
'''


def capture(capability):
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    result = subprocess.run([sys.executable, "-c", CAPTURE, json.dumps([CASES, SEQUENCES])], env=env,
                            capture_output=True, text=True, check=True)
    data = json.loads(result.stdout)
    expected = {"avx2": "AVX2", "default": "DEFAULT"}[capability]
    assert data["capability"] == expected, f"asked for {capability}, torch ran {data['capability']}"
    return data


def main():
    kernels = {"avx2": capture("avx2"), "scalar": capture("default")}
    with open(OUT, "w") as f:
        json.dump(kernels, f, separators=(",", ":"))
    print(f"noise: {len(CASES)} cases, {len(SEQUENCES)} sequences, torch {kernels['avx2']['torch']} -> {OUT}")


if __name__ == "__main__":
    main()
