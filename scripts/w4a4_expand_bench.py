#!/usr/bin/env python3
"""The weight expansion of the fast W4A4 path (w4a4_fp8_weights.cu: the 4-bit codes and the low-rank branch folded
into one e4m3 scratch; docs/hopper.md "Session 9") on a GPU. The tree's kernels (INT4 with bf16 and f16 group
scales, NVFP4 with either low-rank dtype; at rank 32 the Hopper `_wgmma_…_r32` kernel `expansionKernel` picks on
sm_90a, the mma.sync `_r32` one it picks elsewhere, and the general one), launched as `CUDASVDQW4A4FastLinear.expandWeights` does
(`geometry` mirrors `expansionLaunch`), are checked against a torch reference of
`W4A4FastReference.foldedWeights`: the same fp32 base products, the low-rank sum in float64, e4m3 rounding by
torch's CPU cast. Outputs are poisoned first; every code must be within one e4m3 step of the reference (the GPU
adds the low-rank sum in the tensor cores' order) and a second launch must give the same bytes. Shapes: FLUX's
(N, K) at rank 32, then ragged ones (N not a multiple of 128, K not a multiple of 128, other ranks).

Then the bf16 cases are timed (a CUDA graph of 20 launches, inputs and outputs rotated over buffers larger than
L2, median of 7 replays) alone and followed by the FP8 GEMM that reads the folded weights (torch._scaled_mm,
M = 4608), next to a device copy; `--baseline old.cu` (session 8's file, `git show
1ad1055:Sources/CUDABackend/Kernels/w4a4_fp8_weights.cu`) times that expansion (INT4 codes only, its 32 low-rank
code columns copied) in the same run.
Needs torch with CUDA and NVRTC (sm_90): python3 scripts/w4a4_expand_bench.py [--baseline F] [--compile-only]"""
import argparse, os, sys
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_bench import KERNELS, load_nvrtc, compile_source, Module, graph_time_us as gtime  # noqa: E402
P = lambda t: ("p", t.data_ptr()); I = lambda v: ("i", int(v))

TREE_FILE = "w4a4_fp8_weights.cu"
def geometry(name, N, depth, R):
    """Grid, threads and shared memory of an expansion kernel, as `CUDASVDQW4A4FastLinear.expansionLaunch` makes them:
    the `_wgmma` kernels one warpgroup per 64 rows × 3 parts of 64 columns (4 KB tiles of up and of each part's
    down, 1024 bytes of alignment slack), the others 256 threads per 128 rows × 256 columns (R 16-bit values per row
    of the tiles)."""
    if "_wgmma_" in name:
        return (-(-depth // 192), -(-N // 64), 1), 128, 4096 * 4 + 1024
    return (-(-depth // 256), -(-N // 128), 1), 256, (256 + 128) * 2 * R
FLUX = [(3072, 3072), (9216, 3072), (12288, 3072), (21504, 3072), (3072, 12288), (3072, 15360)]
RAGGED = [(200, 192, 16), (136, 320, 48), (64, 128, 64), (72, 224, 256), (96, 384, 192), (3000, 3008, 32),
          (136, 256, 0)]   # (N, K, R)
KINDS = [("int4", "bf16"), ("int4", "f16"), ("nvfp4", "bf16"), ("nvfp4", "f16")]


def inputs(N, K, R, precision, dtype, dev):
    """Random codes, scales, row factors, low-rank factors and the inverse units of the upload's bound."""
    dt = torch.bfloat16 if dtype == "bf16" else torch.float16
    qweight = torch.randint(0, 256, (N, K // 2), dtype=torch.uint8, device=dev)
    if precision == "nvfp4":
        scales = torch.randint(0x08, 0x7F, (N, K // 16), dtype=torch.uint8, device=dev)   # positive finite e4m3
        scale_values = scales.cpu().view(torch.float8_e4m3fn).float().to(dev)
        factors = 0.5 * (torch.rand(N, device=dev) + 0.5)
        largest_code = 12.0
    else:
        s = (torch.rand(N, K // 64, device=dev) * 0.05 + 1e-4).to(dt)
        scales, scale_values = s.view(torch.int16), s.float()
        factors = torch.ones(N, device=dev)
        largest_code = 8.0
    up = (torch.randn(N, R, device=dev) * 0.05).to(dt)
    down = (torch.randn(K, R, device=dev) * 0.3).to(dt)
    bound = (largest_code * scale_values.abs().amax(1).double() * factors.double()
             + up.double().abs() @ down.double().abs().amax(0))
    inverse = torch.where(bound > 0, 448 / bound, torch.zeros_like(bound)).float()
    inverse[3] = 0   # an all-zero row's unit: zero codes
    return qweight, scales, scale_values, factors.contiguous(), inverse.contiguous(), up, down


def reference(N, K, depth, precision, qweight, scales, scale_values, factors, inverse, up, down):
    nibbles = torch.stack([(qweight >> 4 * i) & 0xF for i in range(2)], -1).reshape(N, K).long()
    if precision == "nvfp4":
        table = torch.tensor([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], dtype=torch.float32, device=qweight.device)
        v, group = table[nibbles], 16
    else:
        v, group = torch.where(nibbles >= 8, nibbles - 16, nibbles).float(), 64
    scale_factors = (scale_values * factors[:, None]).repeat_interleave(group, 1)   # s · f in fp32, as the kernel
    w = ((v.double() * scale_factors.double() + up.double() @ down.double().T).float() * inverse[:, None]).clamp(-448, 448)
    out = torch.zeros(N, depth, dtype=torch.uint8, device=qweight.device)
    out[:, :K] = w.cpu().to(torch.float8_e4m3fn).view(torch.uint8).to(qweight.device)
    return out


def steps_apart(a, b):
    """How many e4m3 steps apart two code tensors are, element-wise (codes are ordered by magnitude per sign)."""
    signed = lambda c: torch.where(c >= 128, -(c.long() - 128), c.long())
    return (signed(a) - signed(b)).abs()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", help="session 8's w4a4_fp8_weights.cu, timed beside the tree's")
    parser.add_argument("--compile-only", action="store_true")
    parser.add_argument("--source", help="another copy of w4a4_fp8_weights.cu (a variant) to check and time instead")
    args = parser.parse_args()
    nvrtc = load_nvrtc()
    if args.compile_only:
        print(compile_source(nvrtc, TREE_FILE)[1]); return True
    dev = torch.device("cuda"); torch.zeros(1, device=dev)
    if args.source:
        tree = Module(compile_source(nvrtc, os.path.basename(args.source), folder=os.path.dirname(os.path.abspath(args.source)),
                                     includes=[KERNELS])[0])
    else:
        tree = Module(compile_source(nvrtc, TREE_FILE)[0])
    baseline = None
    if args.baseline:
        folder = os.path.dirname(os.path.abspath(args.baseline))
        baseline = Module(compile_source(nvrtc, os.path.basename(args.baseline), folder=folder, includes=[KERNELS])[0])
    ok, rows = True, []
    cases = [(N, K, 32, kind) for N, K in FLUX for kind in KINDS] + [(N, K, R, kind) for N, K, R in RAGGED for kind in KINDS]
    for N, K, R, (precision, dtype) in cases:
        if precision == "int4" and K % 64: continue
        depth = (K + 127) // 128 * 128
        per_set = N * K // 2 + N * depth
        timed = (N, K) in FLUX and dtype == "bf16"
        sets = max(1, -(-200_000_000 // per_set)) if timed else 1
        data = [inputs(N, K, R, precision, dtype, dev) for _ in range(sets)]
        outs = [torch.empty(N, depth, dtype=torch.uint8, device=dev) for _ in range(sets)]
        # CUDASVDQW4A4FastLinear.expansionKernel: rank 32 takes the `_r32` form; at rank 32 the general one is
        # checked (and timed) too; the Hopper form (`_wgmma_…_r32`, rank 32 only) first.
        names = [f"w4a4_fp8_expand_weights_{precision}_{dtype}"]
        if R == 32: names = [f"w4a4_fp8_expand_weights_wgmma_{precision}_{dtype}_r32", names[0] + "_r32"] + names
        expected = reference(N, K, depth, precision, *data[0])
        launches = []
        for name in names:
            grid, threads, smem = geometry(name, N, depth, R)
            function = tree.function(name, smem)

            def launch(i, stream, out=None, function=function, grid=grid, threads=threads, smem=smem):
                q, s, _, f, inv, up, down = data[i % sets]
                tree.launch(function, grid, (threads, 1, 1), smem, stream.cuda_stream if stream else 0,
                            [P(q), P(s), P(f), P(inv), P(up), P(down), P(outs[i % sets] if out is None else out), I(N), I(K), I(R), I(depth)])
            launches.append(launch)
            results = []
            for _ in range(2):
                out = torch.full((N, depth), 0x7F, dtype=torch.uint8, device=dev)   # 0x7F: an e4m3 NaN, never written
                launch(0, None, out); torch.cuda.synchronize()
                results.append(out)
            apart = steps_apart(results[0], expected)
            same = torch.equal(results[0], results[1])
            good = int(apart.max()) <= 1 and same
            ok &= good
            case = f"N={N} K={K} R={R} {precision} {dtype} {name.removeprefix('w4a4_fp8_expand_weights_')}"
            print(f"{case}: {'OK' if good else 'FAIL'} (codes one step from the reference: {int((apart == 1).sum())} of {N * depth}, "
                  f"more: {int((apart > 1).sum())}; second launch {'identical' if same else 'DIFFERENT'})", flush=True)
        case = f"N={N} K={K} R={R} {precision} {dtype}"
        if not timed: continue
        codes = torch.randint(0, 0x7E, (4608, depth), dtype=torch.uint8, device=dev).view(torch.float8_e4m3fn)
        one = torch.ones((), device=dev)

        def pair(expand, i, stream):
            """The expansion, then the FP8 GEMM that reads its output (M = 4608 tokens, as at 1024²)."""
            expand(i, stream)
            torch._scaled_mm(codes, outs[i % sets].view(torch.float8_e4m3fn).t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        kernels = [(name.removeprefix("w4a4_fp8_expand_weights_"), launch) for name, launch in zip(names, launches)]
        if baseline is not None and precision == "int4":
            baseline_depth = (K + 32 + 127) // 128 * 128
            baseline_outs = [torch.empty(N, baseline_depth, dtype=torch.uint8, device=dev) for _ in range(sets)]
            units = torch.ones(N, device=dev); up_codes = torch.zeros(N, 32, dtype=torch.uint8, device=dev)
            baseline_function = baseline.function("w4a4_fp8_expand_weights_bf16", 0)

            def baseline_launch(i, stream):
                q, s = data[i % sets][:2]
                baseline.launch(baseline_function, (-(-N * baseline_depth // 32 // 256), 1, 1), (256, 1, 1), 0, stream.cuda_stream,
                              [P(q), P(s), P(units), P(up_codes), P(baseline_outs[i % sets]), I(N), I(K), I(32), I(baseline_depth), I(0)])
            kernels.insert(0, ("session 8", baseline_launch))
        times = [(label, gtime(lambda i, s, f=f: f(i, s)), gtime(lambda i, s, f=f: pair(f, i, s))) for label, f in kernels]
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
