#!/usr/bin/env python3
"""Checks and times the one-pass low-rank + quantize prototype (scripts/prototypes/w4a4_lowrank_quantize.cu) against
the two passes the fast W4A4 path runs today: the low-rank GEMM L = round16(x · proj_down) (cuBLAS through
torch.matmul here) and w4a4_fp8_quantize.cu at its production launch.

For each shape: fresh random x (outlier channels), smoothing factors, proj_down and 1/beta; the two-pass reference
(L from an fp32 product rounded to bf16, then the production quantize kernel); the prototype's codes and scales
(poisoned first) compared byte for byte: input codes must be identical wherever the row's scale is, and every code
within one e4m3 step (the low-rank sums are added in another order). Then both paths are timed (CUDA graph of 20
launches over 3 rotating inputs, so x comes from HBM; median of 7).

    python3 scripts/w4a4_lowrank_quantize_bench.py [--compile-only]

A historical prototype (docs/hopper.md, session 8): since session 9 the fast path folds the low-rank branch into the
expanded weights and the quantize kernel takes no low-rank values, so the two-pass reference exists only up to commit
1ceb428. In this tree the script compiles the prototype (--compile-only, which checks that the quantize helpers it
includes are still there); for the comparison and the timings run it from a checkout of 1ceb428.
"""
import argparse, os, sys
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_bench import load_nvrtc, compile_source, Module, graph_time_us  # noqa: E402
from w4a4_quantize_bench import production  # noqa: E402
from w4a4_fused_gemm_bench import tensor_map_2d  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.join(HERE, "..", "Sources", "CUDABackend", "Kernels")
# (M, K, R, shifted)
SHAPES = [(4608, 3072, 32, False), (4608, 3072, 64, False), (4096, 3072, 32, False), (512, 3072, 32, False),
          (333, 3072, 32, False), (4608, 12288, 32, True), (4608, 15360, 32, False)]
P = lambda t: ("p", t.data_ptr()); I = lambda v: ("i", int(v))


def ordered(codes):
    """e4m3 codes as integers ordered like their values (sign-magnitude → two's complement)."""
    c = codes.to(torch.int32)
    return torch.where(c >= 128, -(c - 128), c)


# Entry points: (name suffix, rows per block, chunks per stage, stages, rank, shifted).
VARIANTS = [("m32_c1_s8_r32", 32, 1, 8, 32, False), ("m32_c4_s4_r32", 32, 4, 4, 32, False),
            ("m32_c4_s2_r32", 32, 4, 2, 32, False), ("m32_c2_s4_r32", 32, 2, 4, 32, False),
            ("m64_c4_s4_r32", 64, 4, 4, 32, False), ("m64_c2_s4_r32", 64, 2, 4, 32, False),
            ("m64_c4_s3_r64", 64, 4, 3, 64, False), ("m32_c2_s4_r64", 32, 2, 4, 64, False),
            ("shifted_m32_c4_s4_r32", 32, 4, 4, 32, True), ("shifted_m32_c2_s4_r32", 32, 2, 4, 32, True)]


def shared_bytes(rows, cps, stages, rank):
    """Plan<ROWS, R, CPS, STAGES>::bytes + 1024 of the prototype."""
    stage = (cps * 64 * 128 + cps * rank * 128 + cps * 64 * 4 + 1023) // 1024 * 1024
    return stages * stage + stages * 16 + 2 * rows * 4 + 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--compile-only", action="store_true")
    args = parser.parse_args()
    nvrtc = load_nvrtc()
    cubin, log = compile_source(nvrtc, "w4a4_lowrank_quantize.cu", folder=os.path.join(HERE, "prototypes"), includes=[KERNELS])
    if args.compile_only:
        print(log)
        return
    if "low_rank" not in open(os.path.join(KERNELS, "w4a4_fp8_quantize.cu")).read():
        sys.exit("the quantize kernel of this tree takes no low-rank values (session 9); run this script from commit 1ceb428")
    dev = torch.device("cuda"); torch.zeros(1, device=dev)
    torch.backends.cuda.matmul.allow_tf32 = False
    fused = Module(cubin)
    quantize = Module(compile_source(nvrtc, "w4a4_fp8_quantize.cu")[0])
    generator = torch.Generator(device=dev); generator.manual_seed(20261122)
    failures = checks = 0
    for M, K, R, shifted in SHAPES:
        depth = (K + R + 127) // 128 * 128
        xs = []
        for _ in range(3):
            x = torch.randn(M, K, device=dev, generator=generator)
            x[:, torch.randperm(K, device=dev, generator=generator)[:K // 64]] *= 30
            xs.append(x.to(torch.bfloat16))
        inverse_smooth = 1 / (torch.rand(K, device=dev, generator=generator) * 1.5 + 0.5)
        proj_down_t = (torch.randn(R, K, device=dev, generator=generator) * 0.02).to(torch.bfloat16)
        inverse_beta = torch.rand(R, device=dev, generator=generator) * 0.5 + 0.05
        suffix = "_shifted" if shifted else ""
        variant, threads = production(M, K, R)
        qfunction = quantize.function(f"w4a4_fp8_quantize_bf16{suffix}_{variant}", 0)
        p_map = tensor_map_2d(fused, proj_down_t, 9, K, R, K * 2, 64, R)
        ref_codes = torch.empty(M, depth, dtype=torch.uint8, device=dev); ref_scales = torch.empty(M, device=dev)
        low_rank = torch.empty(M, R, dtype=torch.bfloat16, device=dev)

        def run_two_pass(i, stream):
            torch.matmul(xs[i % 3], proj_down_t.T, out=low_rank)
            quantize.launch(qfunction, (M, 1, 1), (threads, 1, 1), 0, stream.cuda_stream if stream else 0,
                            [P(xs[i % 3]), P(inverse_smooth), P(low_rank), P(inverse_beta), P(ref_codes), P(ref_scales),
                             I(K), I(R), I(depth), I(0)])

        # Reference: the exact fp32 low-rank product rounded to bf16, then the production quantize kernel.
        low_rank.copy_((xs[0].float() @ proj_down_t.float().T).to(torch.bfloat16))
        ref_codes.fill_(0xFF); ref_scales.fill_(float("nan"))
        quantize.launch(qfunction, (M, 1, 1), (threads, 1, 1), 0, 0,
                        [P(xs[0]), P(inverse_smooth), P(low_rank), P(inverse_beta), P(ref_codes), P(ref_scales),
                         I(K), I(R), I(depth), I(0)])
        torch.cuda.synchronize()
        ref_codes, ref_scales = ref_codes.clone(), ref_scales.clone()
        launches = {}
        for suffix_name, rows, cps, stages, rank, variant_shifted in VARIANTS:
            if rank != R or variant_shifted != shifted or K % (64 * cps):
                continue
            name = f"w4a4_lowrank_quantize_tma_bf16_{suffix_name}"
            shared = shared_bytes(rows, cps, stages, rank)
            function = fused.function(name, shared)
            maps = [tensor_map_2d(fused, x, 9, K, M, K * 2, 64, rows) for x in xs]
            outputs = [(torch.empty(M, depth, dtype=torch.uint8, device=dev), torch.empty(M, device=dev)) for _ in range(2)]

            def run(i, stream, function=function, maps=maps, rows=rows, shared=shared, out=outputs[0]):
                fused.launch(function, ((M + rows - 1) // rows, 1, 1), (160, 1, 1), shared, stream.cuda_stream if stream else 0,
                             [("m", maps[i % 3]), ("m", p_map), P(inverse_smooth), P(inverse_beta), P(out[0]), P(out[1]),
                              I(M), I(K), I(depth), I(0)])
            for out in outputs:
                out[0].fill_(0xFF); out[1].fill_(float("nan"))  # 0xFF: an e4m3 NaN, never a valid code
                run(0, None, out=out)
            torch.cuda.synchronize()
            (codes, scales), (again, again_scales) = outputs
            repeatable = bool((codes == again).all()) and bool((scales == again_scales).all())
            same_scale = scales == ref_scales
            input_differ = int((codes[same_scale, :K] != ref_codes[same_scale, :K]).sum())
            worst = int((ordered(codes) - ordered(ref_codes)).abs().max())
            differing = int((codes != ref_codes).sum())
            ok = input_differ == 0 and worst <= 1 and repeatable and bool(torch.isfinite(scales).all())
            checks += 1; failures += not ok
            print(f"{'OK ' if ok else 'BAD'} {suffix_name} M={M} K={K} R={R}{' shifted' if shifted else ''}: {differing} of "
                  f"{codes.numel()} code bytes differ (worst {worst} step), {int((~same_scale).sum())} of {M} scales, input "
                  f"codes differing where the scale agrees: {input_differ}, second run identical: {repeatable}", flush=True)
            if not ok:
                where = (codes[:, :K] != ref_codes[:, :K]).nonzero()[:4].tolist()
                print("     first input-code mismatches (row, column, ours, reference): "
                      + ", ".join(f"({r}, {c}, {int(codes[r, c])}, {int(ref_codes[r, c])})" for r, c in where), flush=True)
            launches[suffix_name] = run
        launches["two passes"] = run_two_pass
        times = {}
        for _ in range(2):
            times = {n: graph_time_us(f) for n, f in launches.items()}
        base = times["two passes"]
        print("    " + ", ".join(f"{n} {t:.1f} us ({base / t:.2f}x)" for n, t in times.items()), flush=True)
    print(f"\n{checks - failures}/{checks} checks pass")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
