#!/usr/bin/env python3
"""The weight expansion of the fast W4A4 path (w4a4_fp8_weights.cu, docs/hopper.md "Session 6: weight expansion")
on a GPU. The tree's kernels (INT4 with bf16 and f16 group scales, NVFP4), launched as
`CUDASVDQW4A4FastLinear.expandWeights` does (mirrored in `TREE_UNITS`), are checked byte for byte against a torch
reference (the same fp32 products on the GPU, e4m3 rounding by torch's CPU cast: nearest-even; the ratio by IEEE
division) and, when given, against a baseline copy of the file (`--baseline old.cu`, e.g. from `git show`) and
experimental variants (`--variants file.cu`: kernels expand_<dtype>_<name> declared by
`VARIANT(name, units, nc, cs, stride)` lines, one thread per `units` × 16 codes; `--kernel` checks another copy
of the tree's file). The baseline is launched one thread per 16 codes, as before session 6. Outputs are poisoned
first. FLUX shapes (N, K) with their production low-rank columns; then each kernel is timed (a CUDA graph of 20 launches, inputs and outputs rotated over
buffers larger than L2, median of 7 replays; the baseline before and after the others), alone and followed by the
FP8 GEMM that reads the folded weights (torch._scaled_mm, M = 4608), next to a device copy.
Needs torch with CUDA and NVRTC (sm_90): python3 scripts/w4a4_expand_bench.py [--baseline F] [--variants F]"""
import argparse, os, re, shutil, sys, tempfile
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_bench import KERNELS, load_nvrtc, compile_source, Module, graph_time_us as gtime  # noqa: E402
P = lambda t: ("p", t.data_ptr()); I = lambda v: ("i", int(v))

TREE_FILE, TREE_NAME = "w4a4_fp8_weights.cu", "w4a4_fp8_expand_weights_{}"
TREE_UNITS = {"bf16": 2, "f16": 2, "nvfp4": 1}   # CUDASVDQW4A4FastLinear.expansionUnitsPerThread
THREADS = 256
# (N, K, R, offset, total low-rank columns): FLUX's layers at rank 32 (qkv_proj at offset 32 of 64 as in
# W4A4FastLowRankColumns, the shared-input layers of a single block at 0 of 64).
SHAPES = [(3072, 3072, 32, 0, 32), (9216, 3072, 32, 32, 64), (12288, 3072, 32, 0, 64), (21504, 3072, 32, 0, 64),
          (3072, 12288, 32, 0, 32), (3072, 15360, 32, 0, 32)]


def module(nvrtc, path):
    """The cubin of the kernel file at `path`, compiled next to the tree's headers."""
    with tempfile.TemporaryDirectory() as folder:
        for name in os.listdir(KERNELS):
            if name.endswith(".cuh"): shutil.copy(os.path.join(KERNELS, name), folder)
        shutil.copy(path, os.path.join(folder, "kernel.cu"))
        return Module(compile_source(nvrtc, "kernel.cu", folder)[0])


def inputs(N, K, R, kind, dev):
    """Random codes, scales, per-channel units (row 3's is 0 for INT4: zero output) and low-rank codes."""
    qweight = torch.randint(-2**31, 2**31, (N, K // 8), dtype=torch.int32, device=dev)
    if kind == "nvfp4":
        scales = torch.randint(0x08, 0x7F, (N, K // 16), dtype=torch.uint8, device=dev)   # positive finite e4m3
        smax = scales.cpu().view(torch.float8_e4m3fn).float().amax(1).to(dev)
        units = torch.exp2(torch.ceil(torch.log2(smax * 6 / 448)))
    else:
        dt = torch.bfloat16 if kind == "bf16" else torch.float16
        s = (torch.rand(N, K // 64, device=dev) * 0.05 + 1e-4).to(dt)
        units = s.float().amax(1) * 8 / 448
        units[3] = 0
        scales = s.view(torch.int16)
    up = torch.randint(0, 256, (N, R), dtype=torch.uint8, device=dev)
    return qweight, scales, units.contiguous(), up


def reference(N, K, R, off, depth, kind, qweight, scales, units, up):
    nibbles = torch.stack([(qweight >> (4 * i)) & 0xF for i in range(8)], -1).reshape(N, K)
    if kind == "nvfp4":
        table = torch.tensor([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], dtype=torch.float32, device=qweight.device)
        micro = scales.cpu().view(torch.float8_e4m3fn).float().to(qweight.device)
        ratio = micro * (torch.full_like(units, 0.5) / units)[:, None]
        v = table[nibbles] * ratio.repeat_interleave(16, 1)
    else:
        q = torch.where(nibbles >= 8, nibbles - 16, nibbles).float()
        s = scales.view(torch.bfloat16 if kind == "bf16" else torch.float16).float()
        ratio = torch.where(units[:, None] > 0, s / torch.where(units > 0, units, 1.0)[:, None], torch.zeros_like(s))
        v = q * ratio.repeat_interleave(64, 1)
    out = torch.zeros(N, depth, dtype=torch.uint8, device=qweight.device)
    out[:, :K] = v.cpu().to(torch.float8_e4m3fn).view(torch.uint8).to(qweight.device)
    out[:, K + off:K + off + R] = up
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline"); parser.add_argument("--variants")
    parser.add_argument("--kernel", default=os.path.join(KERNELS, TREE_FILE), help="the kernel file checked (the tree's)")
    args = parser.parse_args()
    dev = torch.device("cuda"); torch.zeros(1, device=dev)
    nvrtc = load_nvrtc()
    sms = torch.cuda.get_device_properties(dev).multi_processor_count
    tree = module(nvrtc, args.kernel)
    kernels = [("tree", tree, TREE_NAME, TREE_UNITS, False)]
    if args.baseline: kernels.insert(0, ("baseline", module(nvrtc, args.baseline), TREE_NAME, {"bf16": 1, "f16": 1, "nvfp4": 1}, False))
    if args.variants:
        extra = module(nvrtc, args.variants)
        for name, units, stride in re.findall(r"^VARIANT\((\w+), (\d+), \w+, \w+, (\w+)\)", open(args.variants).read(), re.M):
            kernels.append((name, extra, "expand_{}_" + name, dict.fromkeys(("bf16", "f16", "nvfp4"), int(units)), stride == "true"))
    ok, rows = True, []
    for (N, K, R, off, total), kind in [(s, k) for s in SHAPES for k in ("bf16", "f16", "nvfp4")]:
        depth = (K + total + 127) // 128 * 128
        per_set = N * K // 2 + N * depth
        sets = max(1, -(-200_000_000 // per_set)) if kind != "f16" else 1
        data = [inputs(N, K, R, kind, dev) for _ in range(sets)]
        outs = [torch.empty(N, depth, dtype=torch.uint8, device=dev) for _ in range(sets)]

        def launch(label, mod, name, units, stride, i, stream, out=None):
            q, s, u, up = data[i % sets]
            blocks = -(-N * depth // (16 * units[kind]) // THREADS)
            if stride: blocks = min(blocks, sms * (2048 // THREADS))
            mod.launch(mod.function(name.format(kind), 0), (blocks, 1, 1), (THREADS, 1, 1), 0, stream.cuda_stream if stream else 0,
                       [P(q), P(s), P(u), P(up), P(outs[i % sets] if out is None else out), I(N), I(K), I(R), I(depth), I(off)])

        expected = reference(N, K, R, off, depth, kind, *data[0])
        bad, first = {}, None
        for kernel in kernels:
            out = torch.full((N, depth), 0x7F, dtype=torch.uint8, device=dev)   # 0x7F: an e4m3 NaN, never written
            launch(*kernel, 0, None, out); torch.cuda.synchronize()
            first = out if first is None else first
            wrong = (int((out != expected).sum()), int((out != first).sum()))
            if any(wrong): bad[kernel[0]] = wrong
        ok &= not bad
        case = f"N={N} K={K} R={R} offset={off} depth={depth} {kind}"
        print(f"{case}: {'OK' if not bad else 'FAIL'} ({len(kernels)} kernels differing bytes vs reference, vs the first: {bad or 'identical'})", flush=True)
        if kind != "f16":
            def pair(kernel, i, stream):
                """The expansion, then the FP8 GEMM that reads its output (M = 4608 tokens, as at 1024²)."""
                launch(*kernel, i, stream)
                torch._scaled_mm(codes, outs[i % sets].view(torch.float8_e4m3fn).t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
            codes = torch.randint(0, 0x7E, (4608, depth), dtype=torch.uint8, device=dev).view(torch.float8_e4m3fn)
            one = torch.ones((), device=dev)
            order = kernels + kernels[:1]
            times = [(k[0], gtime(lambda i, s, k=k: launch(*k, i, s)), gtime(lambda i, s, k=k: pair(k, i, s))) for k in order]
            rows.append((case, per_set, times))
    source = torch.empty(100_000_000 // 4, dtype=torch.int32, device=dev); target = torch.empty_like(source)
    copy_us = gtime(lambda i, s: target.copy_(source))
    print(f"\ncopy ceiling: {source.numel() * 8 / copy_us / 1e3:.0f} GB/s (read + write, 100 MB)")
    for case, nbytes, times in rows:
        print(case + " | " + " | ".join(f"{label} {us:.1f} µs ({nbytes / us / 1e3:.0f} GB/s; +GEMM {both:.1f})" for label, us, both in times))
    print("ALL OK" if ok else "SOME FAILED")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
