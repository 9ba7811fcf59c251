#!/usr/bin/env python3
"""The activation quantize pass of the fast W4A4 path (w4a4_fp8_quantize.cu, docs/hopper.md "Session 6: quantize
pass") on a GPU: every launch variant at its production geometry (`CUDASVDQW4A4FastLinear.quantizeLaunch`, mirrored
in `production` below) and at other block sizes (rows partly re-read) is checked byte for byte against `plain` with
256 threads, and that against a torch reference (the same fp32 products on the GPU, the e4m3 rounding by torch's CPU
cast: nearest-even; scales by IEEE division). Shapes: K = 3072 and 12288, and 1088 (rows padded with zero codes to
1152), shifted or not, M = 4608, 4096, 512, 333, 1, bf16 and f16; outputs poisoned first. Since session 9 the pass
writes the smoothed input alone (the low-rank branch is folded into the expanded weights). Then the bf16 FLUX shapes
are timed (a CUDA graph of 20 launches, inputs rotated over 3 buffers, median of 7 replays) against `plain` at the
block size the engine used before session 6, and a device-to-device copy gives the bandwidth ceiling.
Needs torch with CUDA and NVRTC (sm_90): python3 scripts/w4a4_quantize_bench.py"""
import itertools, os, sys
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_bench import load_nvrtc, compile_source, Module, graph_time_us as gtime  # noqa: E402
P = lambda t: ("p", t.data_ptr()); I = lambda v: ("i", int(v))


def power_of_two_threads(needed):
    threads = 64
    while threads < needed and threads < 1024: threads *= 2
    return threads

def production(M, K):
    """CUDASVDQW4A4FastLinear.quantizeLaunch."""
    many = M >= 1024
    if K <= 3072: return ("kept6", 64) if many else ("kept3", 128)
    return ("wide" if many else "plain"), power_of_two_threads((K + 63) // 64 if many else 256)

def before(M, K):
    """The block size of the engine before session 6 (one kernel, `plain`'s code)."""
    return "plain", power_of_two_threads(max((K + 63) // 64 if M >= 1024 else 256, 64))

def e4m3_cpu(v):
    return v.clamp(-448, 448).cpu().to(torch.float8_e4m3fn).view(torch.uint8).to(v.device)


def main():
    dev = torch.device("cuda"); torch.zeros(1, device=dev)
    mod = Module(compile_source(load_nvrtc(), "w4a4_fp8_quantize.cu")[0])
    ok = True
    timings = []
    for K, shifted, dt, M in itertools.product([3072, 12288, 1088], [False, True], [torch.bfloat16, torch.float16],
                                               [4608, 4096, 512, 333, 1]):
        depth = (K + 127) // 128 * 128
        name = ("bf16" if dt == torch.bfloat16 else "f16") + ("_shifted" if shifted else "")
        timed = dt == torch.bfloat16 and K != 1088 and shifted == (K == 12288) and M in (4608, 4096, 512, 333)
        buffers = 3 if timed else 1
        xs = [((torch.rand(M, K, device=dev) * 2 - 1) * (1.5 if shifted else 1)).to(dt) for _ in range(buffers)]
        inv = (1 / (torch.rand(K, device=dev) * 1.5 + 0.5).to(dt).float()).contiguous()
        if M > 7 and not shifted:
            xs[0][5].zero_()   # an all-zero row: scale 0, zero codes

        def launch(variant, threads, i, stream, codes, scales):
            mod.launch(mod.function(f"w4a4_fp8_quantize_{name}_{variant}", 0), (M, 1, 1), (threads, 1, 1), 0,
                       stream.cuda_stream if stream else 0,
                       [P(xs[i % buffers]), P(inv), P(codes), P(scales), I(K), I(depth)])

        def run(variant, threads):
            codes = torch.full((M, depth), 0xFF, dtype=torch.uint8, device=dev)   # 0xFF: an e4m3 NaN, never written
            scales = torch.full((M,), float("nan"), device=dev)
            launch(variant, threads, 0, None, codes, scales); torch.cuda.synchronize()
            return codes, scales

        codes0, scales0 = run("plain", 256)
        x = xs[0].float(); t = ((x + 0.171875) if shifted else x) * inv
        amax = t.abs().amax(1)
        factor = torch.where(amax > 0, torch.full_like(amax, 448.0) / amax, torch.zeros_like(amax))
        reference = torch.zeros(M, depth, dtype=torch.uint8, device=dev)
        reference[:, :K] = e4m3_cpu(t * factor[:, None])
        bad_reference = int((reference != codes0).sum()) + int((scales0.view(torch.int32) != (amax / torch.full_like(amax, 448.0)).view(torch.int32)).sum())
        chosen = production(M, K)
        configs = {chosen, before(M, K)} | {(v, n) for v in ("kept6", "kept3", "wide", "plain") for n in (64, 128, 256)}
        bad_variants = {}
        for variant, threads in sorted(configs):
            codes, scales = run(variant, threads)
            bad = int((codes != codes0).sum()) + int((scales.view(torch.int32) != scales0.view(torch.int32)).sum())
            if bad: bad_variants[f"{variant}/{threads}"] = bad
        good = bad_reference == 0 and not bad_variants
        ok &= good
        case = f"M={M} K={K} {name}"
        print(f"{case}: {'OK' if good else 'FAIL'} (plain/256 vs reference {bad_reference} bytes; {len(configs)} launches vs plain/256: "
              f"{bad_variants or 'identical'})", flush=True)
        if timed:
            codes, scales = run(*chosen)
            times = {label: gtime(lambda i, s, c=config: launch(*c, i, s, codes, scales))
                     for label, config in (("before", before(M, K)), ("now", chosen), ("before again", before(M, K)))}
            timings.append((case, chosen, times, M * K * dt.itemsize + M * depth + M * 4))

    source = torch.empty(4608 * 12288 * 3 // 2, dtype=torch.int32, device=dev); target = torch.empty_like(source)
    copy_us = gtime(lambda i, s: target.copy_(source))
    print(f"\ncopy ceiling: {source.numel() * 8 / copy_us / 1e3:.0f} GB/s (read + write, {source.numel() * 4 / 1e6:.0f} MB)")
    print("case | launch | before (plain, old block) µs | now µs | before again µs | now GB/s")
    for case, chosen, times, nbytes in timings:
        print(f"{case} | {chosen[0]}/{chosen[1]} | {times['before']:.1f} | {times['now']:.1f} | {times['before again']:.1f} | {nbytes / times['now'] / 1e3:.0f}")
    print("ALL OK" if ok else "SOME FAILED")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
