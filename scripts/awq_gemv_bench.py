#!/usr/bin/env python3
"""Checks and times the AWQ W4A16 GEMV kernels (awq_gemv.cu) straight from their source, on an H100/H200.

Compiles awq_gemv.cu with NVRTC (sm_90a, ptxas report) plus extra instantiations of its template (rows per block,
channels per warp) and a plain streaming read (the bandwidth ceiling at the layer's size), launches them through the
driver API on PyTorch tensors, and compares each output (poisoned with NaN first) with an exact PyTorch emulation of
the CPU reference on fresh random inputs: weights hfma(code, scale, zero) and products hmul rounded to the 16-bit
type (computed exactly in fp32, then rounded), products summed in float64, the sum rounded, then hadd(bias). A kernel
sums in fp32 in another order, so an output may sit one rounding step (of the sum) from the reference; more fails.
Times each kernel in a CUDA graph of launches over 4 weight sets (more than the L2 holds), against a baseline copy of
the kernel file when given (--baseline: a folder holding an older awq_gemv.cu with its one-warp-per-channel
`awq_gemv_bf16`), and measures how much of the modulation GEMV hides behind an FP8 GEMM on a side stream.

    python3 scripts/awq_gemv_bench.py --compile-only                 # anywhere with NVRTC: the ptxas reports
    python3 scripts/awq_gemv_bench.py [--baseline OLD_KERNELS_DIR]   # on the GPU: checks, then timings
    ncu -k regex:awq_gemv_rows1 python3 scripts/awq_gemv_bench.py --profile   # the single-row kernel alone
"""
import argparse
import os
import re
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_bench import KERNELS, compile_source, load_nvrtc  # noqa: E402

# name: (ROWS, C) of the awq_gemv template, instantiated for bf16 and f16 beside the file's own kernels.
VARIANTS = {f"r{rows}c{c}": (rows, c) for rows in (1, 2, 4) for c in (1, 2, 4)}
TEMPLATE_VARIANTS = set(VARIANTS)
TYPES = {"bf16": "NKBFloat16", "f16": "NKFloat16"}


def variant_source(extra=None):
    lines = ['#include "awq_gemv.cu"'] + ([open(extra).read()] if extra else [])
    for name, (rows, c) in VARIANTS.items():
        if name not in TEMPLATE_VARIANTS:
            continue
        for suffix, trait in TYPES.items():
            lines.append(f"NK_KERNEL void v_{name}_{suffix}(AWQ_GEMV_ARGS) {{ awq_gemv<{trait}, {rows}, {c}>(AWQ_GEMV_PASS); }}")
    # Reads `count` 16-byte vectors once (the codes' share of the layer's bytes), as the GEMV streams its codes.
    lines.append("NK_KERNEL void stream_read(const u8* p, i64 count, u32* out) { u32 a = 0;"
                 " for (i64 i = nk_global_thread_index(); i < count; i += nk_grid_thread_count()) {"
                 " const uint4 v = awq_code_load(p + 16 * i); a ^= v.x ^ v.y ^ v.z ^ v.w; }"
                 " if (a == 0x12345678u) out[0] = a; }")
    return "\n".join(lines) + "\n"


def add_extra_variants(extra):
    """Adds the kernels `v_<name>_bf16` / `_f16` that file `extra` defines (name = letter, rows, "c", channels per
    warp, anything: "x1c2m") to VARIANTS: experiments launched like the file's own kernels."""
    for name in sorted(set(re.findall(r"\bv_([a-z](\d+)c(\d+)\w*?)_bf16\b", open(extra).read()))):
        VARIANTS[name[0]] = (int(name[1]), int(name[2]))


def compile_variants(extra=None):
    folder = tempfile.mkdtemp(prefix="awq_gemv_")
    for name in os.listdir(KERNELS):
        os.symlink(os.path.join(os.path.abspath(KERNELS), name), os.path.join(folder, name))
    with open(os.path.join(folder, "awq_variants.cu"), "w") as f:
        f.write(variant_source(extra))
    return compile_source(load_nvrtc(), "awq_variants.cu", folder=folder)


class Bench:
    """The compiled kernels on PyTorch's device, with random layers, the exact reference and graph timing."""

    def __init__(self, cubin, baseline):
        import torch
        from attention_bench import Module
        self.torch = torch
        self.dev = torch.device("cuda")
        torch.zeros(1, device=self.dev)
        self.mod = Module(cubin)
        # The baseline kernel file, compiled on its own.
        self.baseline = Module(compile_source(load_nvrtc(), "awq_gemv.cu", folder=baseline)[0]) if baseline else None
        self.sms = torch.cuda.get_device_properties(0).multi_processor_count
        self.functions = {}
        self.kernels = ["old", "new"] if baseline else ["new"]

    def function(self, name):
        if name not in self.functions:
            module = self.baseline if name in ("awq_gemv_bf16", "awq_gemv_f16") else self.mod
            self.functions[name] = module.function(name, 200 * 1024)
        return self.functions[name]

    def layer(self, n, k, dtype, bias=True):
        t, dev = self.torch, self.dev
        layer = dict(codes=t.randint(0, 256, (n, k // 2), dtype=t.uint8, device=dev),
                     scales=(t.rand(n, k // 64, device=dev) * 0.002 + 0.001).to(dtype),
                     zeros=(t.rand(n, k // 64, device=dev) * 0.018 - 0.024).to(dtype),
                     bias=((t.rand(n, device=dev) * 2 - 1).to(dtype) if bias else None))
        # (scale, zero) pairs, scale in the low half: u32 [N, K/64].
        low, high = [layer[name].view(t.int16).to(t.int32) & 0xFFFF for name in ("scales", "zeros")]
        layer["pairs"] = (low | (high << 16)).contiguous()
        return layer

    def reference(self, layer, x, chunks):
        """The CPU reference's arithmetic, exactly: fp32 products of 16-bit values are exact, so rounding them
        once is hfma / hmul; the sum in float64 (the kernels' fp32 sums may round it differently). Returns the
        outputs and the rounded sums before the bias."""
        t, dtype = self.torch, x.dtype
        codes = layer["codes"]
        n, k = codes.shape[0], codes.shape[1] * 2
        q = t.stack([codes & 0xF, codes >> 4], dim=2).reshape(n, k).float()
        w = (q * layer["scales"].float().repeat_interleave(64, 1) + layer["zeros"].float().repeat_interleave(64, 1)).to(dtype).float()
        out = t.empty(x.shape[0], n, dtype=dtype, device=self.dev)
        sums = t.empty(x.shape[0], n, dtype=dtype, device=self.dev)
        for r in range(x.shape[0]):
            sums[r] = y = (w * x[r].float()).to(dtype).double().sum(1).to(dtype)
            if layer["bias"] is not None:
                y = (y.float() + layer["bias"].float()).to(dtype)
            out[r] = y
        if chunks:
            out, sums = [z.reshape(x.shape[0], chunks, n // chunks).transpose(0, 1).contiguous().reshape(x.shape[0], n) for z in (out, sums)]
        return out, sums

    def launch(self, variant, layer, x, out, chunks, stream=0, grid_cap=None):
        """One launch of `variant`: "old" (main's kernel), "new" (the kernel and geometry AWQGEMVLaunch.swift picks)
        or a VARIANTS name."""
        m, k = x.shape
        n = layer["codes"].shape[0]
        suffix = "bf16" if x.dtype == self.torch.bfloat16 else "f16"
        P = lambda tensor: ("p", tensor.data_ptr() if tensor is not None else 0)
        arguments = [P(x), P(layer["codes"]), P(layer["scales"]), P(layer["zeros"]), P(layer["bias"]), P(out),
                     ("i", m), ("i", n), ("i", k), ("i", chunks)]
        if variant == "old":
            self.baseline.launch(self.function(f"awq_gemv_{suffix}"), ((n + 7) // 8, (m + 7) // 8, 1), (256, 1, 1), 0, stream, arguments)
            return
        steps = (k + 1023) // 1024
        if variant == "new":  # AWQGEMVLaunch
            rows, c = (1 if m == 1 else 2 if m == 2 else 4), 2
            while rows > 1 and rows * steps * 2048 > 48 * 1024:
                rows //= 2
            name = f"awq_gemv_rows{rows}_{suffix}"
        else:
            (rows, c), name = VARIANTS[variant], f"v_{variant}_{suffix}"
        blocks = (n + 8 * c - 1) // (8 * c)
        if grid_cap:
            blocks = min(blocks, grid_cap * self.sms)
        self.mod.launch(self.function(name), (blocks, (m + rows - 1) // rows, 1), (256, 1, 1), rows * steps * 2048, stream, arguments)

    def check(self, variant, n, k, m, dtype, chunks, bias=True, grid_cap=None):
        t = self.torch
        layer = self.layer(n, k, dtype, bias)
        x = (t.rand(m, k, device=self.dev) * 2 - 1).to(dtype)
        out = t.full((m, n), float("nan"), dtype=dtype, device=self.dev)
        self.launch(variant, layer, x, out, chunks, grid_cap=grid_cap)
        t.cuda.synchronize()
        ref, sums = self.reference(layer, x, chunks)
        a, b = out.float(), ref.float()
        unwritten = int(a.isnan().sum())
        mantissa = 7 if dtype == t.bfloat16 else 10
        # One rounding step of the sum (which the bias can cancel down to a small output) or of the output.
        step = t.exp2(t.floor(t.log2(t.maximum(b.abs(), sums.float().abs()).clamp_min(1e-30))) - mantissa)
        off = (a - b).abs()
        ok = unwritten == 0 and bool((off <= step * 1.0001).all())
        relative = float((a - b).norm() / b.norm())
        print(f"check {variant:7s} {str(dtype)[6:]:8s} N={n:5d} K={k:4d} M={m:2d} chunks={chunks} bias={int(bias)} cap={grid_cap}: "
              f"{'OK ' if ok else 'FAIL'} unwritten {unwritten}, one step off {int((off > 0).sum())}/{off.numel()}, "
              f"max off/step {float((off / step).max()):.2f}, rel {relative:.2e}", flush=True)
        return ok

    def check_all(self):
        t, ok = self.torch, True
        for variant in self.kernels + list(VARIANTS):
            for n, k, m, dtype, chunks, bias in [(18432, 3072, 1, t.bfloat16, 0, True), (9216, 3072, 2, t.float16, 3, True),
                                                 (9216, 3072, 3, t.bfloat16, 3, True), (1004, 1088, 5, t.bfloat16, 0, False),
                                                 (20, 192, 4, t.float16, 0, True)]:
                ok &= self.check(variant, n, k, m, dtype, chunks, bias)
        for variant in self.kernels:
            ok &= self.check(variant, 18432, 3072, 77, t.bfloat16, 6)
            ok &= self.check(variant, 64, 32768, 3, t.float16, 0)
        for variant in [v for v in ("r1c2", "r1c4") if v in VARIANTS]:  # persistent grids
            ok &= self.check(variant, 18432, 3072, 1, t.bfloat16, 6, grid_cap=2)
            ok &= self.check(variant, 9216, 3072, 4, t.float16, 0, grid_cap=3)
        return ok

    def graph_us(self, launch, reps=20, rounds=7):
        """Median over `rounds` graph replays of `reps` calls of launch(i, stream): µs per call."""
        t = self.torch
        stream = t.cuda.Stream()
        with t.cuda.stream(stream):
            for i in range(3):
                launch(i, stream)
        t.cuda.synchronize()
        graph = t.cuda.CUDAGraph()
        with t.cuda.graph(graph, stream=stream):
            for i in range(reps):
                launch(i, stream)
        times = []
        for _ in range(rounds):
            start, end = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            t.cuda.synchronize()
            times.append(start.elapsed_time(end) / reps * 1e3)
        return statistics.median(times)

    def time_all(self):
        t = self.torch
        for n in [18432, 9216]:
            k = 3072
            layers = [self.layer(n, k, t.bfloat16) for _ in range(4)]
            weight_bytes = n * k // 2 + 2 * n * (k // 64) * 2 + n * 2
            for m in [1, 2, 4] if not VARIANTS else [1, 2, 3, 4, 8, 77]:
                x = (t.rand(m, k, device=self.dev) * 2 - 1).to(t.bfloat16)
                out = t.empty(m, n, dtype=t.bfloat16, device=self.dev)
                row = {}
                candidates = [(v, None) for v in self.kernels] + [(v, None) for v in VARIANTS if m <= 4 or VARIANTS[v][0] == 4]
                if m == 1:
                    candidates += [(v, cap) for v in ("r1c2", "r1c4") if v in VARIANTS for cap in (3, 4)]
                for variant, cap in candidates:
                    if m == 77 and variant.startswith("r"):
                        continue
                    us = self.graph_us(lambda i, s: self.launch(variant, layers[i % 4], x, out, 0, s.cuda_stream, cap))
                    row[f"{variant}{'/cap' + str(cap) if cap else ''}"] = us
                reference = row.get("old", row["new"])
                best = min(row, key=row.get)
                cells = "  ".join(f"{name} {us:.1f}" for name, us in row.items())
                print(f"time N={n} K={k} M={m}: {cells} | best {best} {row[best]:.1f} us = {weight_bytes / row[best] / 1e6:.2f} TB/s | "
                      f"new {row['new']:.1f} us = {weight_bytes / row['new'] / 1e6:.2f} TB/s, {reference / row['new']:.2f}x old", flush=True)
            read = self.function("stream_read")
            vectors = n * k // 32
            sink = t.zeros(1, dtype=t.int32, device=self.dev)
            us = self.graph_us(lambda i, s: self.mod.launch(read, (self.sms * 8, 1, 1), (256, 1, 1), 0, s.cuda_stream,
                                                            [("p", layers[i % 4]["codes"].data_ptr()), ("p", vectors), ("p", sink.data_ptr())]))
            print(f"read N={n} K={k}: the codes alone ({vectors * 16 / 1e6:.1f} MB) in {us:.1f} us = {vectors * 16 / us / 1e6:.2f} TB/s", flush=True)

    def overlap(self):
        """An FP8 GEMM at a FLUX shape (fc1: 4608 x 12288 x 3072) alone, the M = 1 N = 18432 GEMV alone, both in
        series, and the GEMV on a side stream beside the GEMM, each in a CUDA graph."""
        t = self.torch
        a = (t.randn(4608, 3072, device=self.dev) * 0.5).to(t.float8_e4m3fn)
        b = (t.randn(12288, 3072, device=self.dev) * 0.5).to(t.float8_e4m3fn)
        one = t.ones((), device=self.dev)
        layers = [self.layer(18432, 3072, t.bfloat16) for _ in range(4)]
        x = (t.rand(1, 3072, device=self.dev) * 2 - 1).to(t.bfloat16)
        out = t.empty(1, 18432, dtype=t.bfloat16, device=self.dev)
        gemv = "new"
        side = t.cuda.Stream()

        def gemm(i, s):
            t._scaled_mm(a, b.t(), one, one, out_dtype=t.bfloat16)

        def vector(i, s):
            self.launch(gemv, layers[i % 4], x, out, 0, s.cuda_stream)

        def series(i, s):
            gemm(i, s)
            vector(i, s)

        def beside(i, s):
            side.wait_stream(s)
            vector(i, side)
            gemm(i, s)
            s.wait_stream(side)

        times = {name: self.graph_us(f) for name, f in [("gemm", gemm), ("gemv", vector), ("series", series), ("side stream", beside)]}
        hidden = (times["series"] - times["side stream"]) / times["gemv"]
        print("overlap: " + "  ".join(f"{k} {v:.1f} us" for k, v in times.items()) + f" | hidden {hidden:.0%} of the GEMV", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--compile-only", action="store_true")
    parser.add_argument("--skip-overlap", action="store_true")
    parser.add_argument("--quick", action="store_true", help="only the file's kernels (and the baseline), fewer sizes")
    parser.add_argument("--profile", action="store_true", help="only 3 launches of the M = 1, N = 18432 layer (for ncu)")
    parser.add_argument("--baseline", help="a kernel folder whose awq_gemv.cu has the old awq_gemv_bf16 / _f16")
    parser.add_argument("--extra", help="a .cu file of experimental kernels v_<letter><rows>c<channels>…_bf16 / _f16")
    args = parser.parse_args()
    if args.extra:
        add_extra_variants(args.extra)
    cubin, log = compile_variants(args.extra)
    report = [line for line in log.splitlines() if "registers" in line or "spill" in line or "Compiling entry" in line]
    print("\n".join(report))
    if args.compile_only:
        return 0
    if args.quick:
        VARIANTS.clear()
    bench = Bench(cubin, args.baseline)
    if args.profile:
        layer, x = bench.layer(18432, 3072, bench.torch.bfloat16), bench.torch.ones(1, 3072, dtype=bench.torch.bfloat16, device=bench.dev)
        out = bench.torch.empty(1, 18432, dtype=bench.torch.bfloat16, device=bench.dev)
        for _ in range(3):
            bench.launch("new", layer, x, out, 0)
        bench.torch.cuda.synchronize()
        return 0
    ok = bench.check_all()
    bench.time_all()
    if not args.skip_overlap:
        bench.overlap()
    print("ALL CHECKS OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
