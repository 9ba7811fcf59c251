#!/usr/bin/env python3
"""The low-rank down-projection kernel of the fast W4A4 path (w4a4_fp8_lowrank_down.cu, docs/hopper.md) on a GPU:
every launch geometry (8 or 16 rows per block × warps per block) checked against a float64 reference rounded to the
activation dtype (at most one 16-bit step off, every value written, the same bits on a second launch) and timed
against torch.matmul (cuBLAS) on the same inputs (a CUDA graph over enough input copies that x comes from HBM,
median of 7 replays). Prints, per shape, the best geometry, the one `W4A4LowRankDownLaunch` picks, and cuBLAS.
Needs torch with CUDA and NVRTC (sm_90); run from anywhere: python3 scripts/w4a4_lowrank_down_bench.py [kernel folder]"""
import os, sys
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_bench import KERNELS, load_nvrtc, compile_source, Module, graph_time_us as gtime  # noqa: E402

dev = torch.device("cuda"); torch.zeros(1, device=dev)
folder = sys.argv[1] if len(sys.argv) > 1 else KERNELS
mod = Module(compile_source(load_nvrtc(), "w4a4_fp8_lowrank_down.cu", folder)[0])
P = lambda t: ("p", t.data_ptr()); I = lambda v: ("i", int(v))
STRIDE = 40




def ordinal(v):
    i = v.view(torch.int16).to(torch.int32)
    return torch.where(i < 0, -(i & 0x7FFF), i)


def ordinal_next(v):
    """The next 16-bit value away from zero, as float64."""
    i = v.view(torch.int16)
    return (i + 1).view(v.dtype).double()


def pick(m, k, rank):
    """Mirror of CUDASVDQW4A4FastLinear.lowRankDownLaunch (Swift): (rows per block, warps), None for cuBLASLt."""
    if not (1 <= m <= 512 and 32 <= k <= 3072 and k % 32 == 0 and 16 <= rank <= 128 and rank % 16 == 0): return None
    return (8 if rank <= 64 else 16), 16


GEOMETRIES = [(8, 8), (8, 16), (16, 4), (16, 8), (16, 16)]
ok = True
shapes = [(4608, 3072, 32), (4096, 3072, 32), (512, 3072, 32), (4608, 12288, 32), (512, 12288, 32), (1536, 3072, 32),
          (4608, 3072, 128), (1, 3072, 32), (1, 12288, 32)] + [(333, 3072, r) for r in (16, 32, 48, 64, 128, 256)]
cases = [(s, torch.bfloat16) for s in shapes] + [((4608, 3072, 32), torch.float16), ((333, 3072, 48), torch.float16)]
for (M, K, R), dt in cases:
    name = "bf16" if dt == torch.bfloat16 else "f16"
    copies = min(64, max(3, -(-160_000_000 // (M * K * 2))))
    reps = max(20, copies)
    xs = [(torch.rand(M, K, device=dev) * 2 - 1).to(dt) for _ in range(copies)]
    pd = (torch.randn(R, K, device=dev) * 0.05).to(dt)
    exact = xs[0].double() @ pd.double().T
    ref = exact.to(dt)
    # fp32 sums in any order: |sum - exact| ≤ K · 2⁻²⁴ · Σ|x·p| (the worst-case bound); then one 16-bit rounding.
    bound = K * 2.0 ** -24 * (xs[0].double().abs() @ pd.double().abs().T)
    spacing = (ordinal_next(ref) - ref.double()).abs()
    def within(out): return bool(((out.double() - exact).abs() <= spacing + bound).all())
    outs = [torch.empty(M, R, dtype=dt, device=dev) for _ in range(copies)]
    results = {}
    for rows, warps in GEOMETRIES:
        smem = warps * rows * STRIDE * 4
        if smem > 227 * 1024: continue
        f = mod.function(f"w4a4_fp8_lowrank_down_{name}_m{rows}", smem)
        grid = ((M + rows - 1) // rows, (R + 31) // 32, 1)
        launch = lambda i, st, f=f, grid=grid, warps=warps, smem=smem: mod.launch(
            f, grid, (32 * warps, 1, 1), smem, st.cuda_stream if st else 0, [P(xs[i % copies]), P(pd), P(outs[i % copies]), I(M), I(K), I(R)])
        out = outs[0]; out.view(torch.int16).fill_(-1)           # 0xFFFF: NaN in both dtypes
        launch(0, None); torch.cuda.synchronize()
        unwritten = int(out.isnan().sum())
        steps = (ordinal(out) - ordinal(ref)).abs()
        first = out.clone(); launch(0, None); torch.cuda.synchronize()
        same = bool(torch.equal(first.view(torch.int16), out.view(torch.int16)))
        good = unwritten == 0 and within(out) and same
        ok &= good
        if not good: print(f"  {rows}x{warps}: unwritten {unwritten}, same bits {same}, max steps {int(steps.max())}")
        results[(rows, warps)] = (gtime(launch, reps), good, int((steps > 0).sum()), int(steps.max()))
    tc = gtime(lambda i, st: torch.matmul(xs[i % copies], pd.T, out=outs[i % copies]), reps)
    cublas_steps = int((ordinal(torch.matmul(xs[0], pd.T)) - ordinal(ref)).abs().max())
    best = min(results, key=lambda g: results[g][0])
    chosen = pick(M, K, R)
    gb = M * K * 2 / 1e3
    line = " ".join(f"{'x'.join(map(str, g))}:{results[g][0]:.1f}{'' if results[g][1] else '!'}" for g in results)
    print(f"M={M} K={K} R={R} {name}: cuBLAS {tc:.1f} us | best {best} {results[best][0]:.1f} us ({gb / results[best][0]:.0f} GB/s) | "
          + (f"picked {chosen} {results[chosen][0]:.1f} us ({tc / results[chosen][0]:.2f}x), " if chosen else "picked cuBLAS, ")
          + f"values off the rounded exact sum {results[best][2]}/{M * R}, max steps {results[best][3]} (cuBLAS {cublas_steps}) | {line}", flush=True)
print("ALL OK" if ok else "SOME FAILED")
sys.exit(0 if ok else 1)
