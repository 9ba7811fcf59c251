#!/usr/bin/env python3
"""What `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=dtype)` returns, for both
PyTorch CPU kernels, written to Tests/PipelinesTests/Fixtures/noise.json.

PyTorch's CPU `normal_` runs a vectorized Box-Muller in its AVX2 build and a libm-based loop in every other build
(AVX-512 machines, ARM, ATEN_CPU_CAPABILITY=default); the results differ in the last bits. Each kernel is captured in
a subprocess with ATEN_CPU_CAPABILITY set (avx2 needs an AVX2 machine; the script checks the capability took).

Per case: the first and last 8 values (IEEE bits of the dtype) and an FNV-1a 64 hash of all the values' bits, plus
draw sequences that reuse one generator (the cached second Box-Muller value of the double sampler).

Run with the reference venv: /work/pyref/bin/python scripts/parity/pipeline_noise_fixtures.py

`--native OUT` instead records the hashes of the machine's own capability and PyTorch release (no subprocess), for
checking other releases and CPUs: Fixtures/noise-torch-2.11-avx512.json is that output from the H200 host
(PyTorch 2.11, an AVX-512 Xeon) for the cases listed in NATIVE_CASES. It showed that AVX-512 CPUs run the AVX2
kernel and that PyTorch 2.11 computes bf16/f16 normals in the old per-operation-rounding way.
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
NATIVE_CASES = [CASES[i] for i in (0, 1, 3, 4, 7, 8, 10, 11)]

HELPERS = r'''
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
'''

CAPTURE = r'''
import json, sys, torch
cases, sequences = json.loads(sys.argv[1])
''' + HELPERS + r'''
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


def record_native(path):
    """Hashes only, for the running PyTorch and CPU."""
    import torch
    namespace = {"torch": torch}
    exec(HELPERS, namespace)
    cases = []
    for seed, shape, dtype in NATIVE_CASES:
        t = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=getattr(torch, dtype))
        cases.append({"seed": seed, "shape": shape, "dtype": dtype, "fnv": str(namespace["fnv"](namespace["bits"](t)))})
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(), "cases": cases}, f)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--native":
        record_native(sys.argv[2])
        return
    kernels = {"avx2": capture("avx2"), "scalar": capture("default")}
    with open(OUT, "w") as f:
        json.dump(kernels, f, separators=(",", ":"))
    print(f"noise: {len(CASES)} cases, {len(SEQUENCES)} sequences, torch {kernels['avx2']['torch']} -> {OUT}")


if __name__ == "__main__":
    main()
