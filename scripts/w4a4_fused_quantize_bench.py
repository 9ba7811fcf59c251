#!/usr/bin/env python3
"""The fused low-rank + quantize kernel of the fast W4A4 path (w4a4_fp8_quantize_lowrank, docs/hopper.md) on a GPU:
checked against a torch reference (float64 low-rank sums rounded to the activation dtype, then the same fp32
quantization: every code within one e4m3 step, padding zero, every byte written) and against the two-pass path
(cuBLAS low-rank GEMM + w4a4_fp8_quantize), and timed against the two passes (a CUDA graph of 20 launches, median
of 7 replays). Needs torch with CUDA and NVRTC (sm_90); run from anywhere: python3 scripts/w4a4_fused_quantize_bench.py"""
import os, sys
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_bench import load_nvrtc, compile_source, Module, graph_time_us as gtime  # noqa: E402
from w4a4_quantize_bench import production  # noqa: E402
dev = torch.device("cuda"); torch.zeros(1, device=dev)
mod = Module(compile_source(load_nvrtc(), "w4a4_fp8_quantize.cu")[0])
P = lambda t: ("p", t.data_ptr()); I = lambda v: ("i", int(v))


def ordinal(c):
    c = c.to(torch.int32)
    return torch.where(c >= 128, -(c & 0x7F), c)

def e4m3(v):
    return v.clamp(-448, 448).to(torch.float8_e4m3fn).view(torch.uint8)

ok = True
for M, K, R, shifted, dt in [(4608, 3072, 32, False, torch.bfloat16), (4608, 3072, 32, True, torch.bfloat16), (4096, 3072, 32, False, torch.bfloat16),
                             (1536, 3072, 32, False, torch.bfloat16), (512, 3072, 32, False, torch.bfloat16), (333, 3072, 32, False, torch.bfloat16),
                             (333, 3072, 16, False, torch.bfloat16), (333, 3072, 64, False, torch.bfloat16), (333, 3072, 128, False, torch.bfloat16),
                             (333, 3072, 256, False, torch.bfloat16), (4608, 3072, 32, False, torch.float16), (4608, 1024, 48, False, torch.bfloat16),
                             (4608, 4096, 32, False, torch.bfloat16)]:
    depth = (K + R + 127) // 128 * 128
    suffix = ("bf16" if dt == torch.bfloat16 else "f16") + ("_shifted" if shifted else "")
    smem = 16 * (K + 8) * 2 + 4 * 16 * R * 4
    variant, threads = production(M, K, R)   # the two-pass path's quantize launch
    fused, old = mod.function("w4a4_fp8_quantize_lowrank_" + suffix, smem), mod.function(f"w4a4_fp8_quantize_{suffix}_{variant}", 0)
    xs = [((torch.rand(M, K, device=dev) * 2 - 1) * (1.5 if shifted else 1)).to(dt) for _ in range(3)]
    pd = (torch.randn(R, K, device=dev) * 0.05).to(dt)          # proj_down transposed [R, K]
    inv = (1 / (torch.rand(K, device=dev) * 1.5 + 0.5).to(dt).float()).contiguous()
    ib = (torch.rand(R, device=dev) * 3 + 0.1).float()
    xs[0][min(5, M - 1)].zero_()
    codes = torch.full((M, depth), 0xFF, dtype=torch.uint8, device=dev); scales = torch.full((M,), float("nan"), device=dev)
    launch = lambda i, st: mod.launch(fused, ((M + 15) // 16, 1, 1), (256, 1, 1), smem, st.cuda_stream if st else 0,
                                      [P(xs[i % 3]), P(inv), P(pd), P(ib), P(codes), P(scales), I(M), I(K), I(R), I(depth), I(0)])
    launch(0, None); torch.cuda.synchronize()
    # Reference: fp64 low-rank sums rounded to dt, fp32 quantization.
    x = xs[0].float()
    L = (xs[0].double() @ pd.double().T).to(dt).float()
    t = ((x + 0.171875) if shifted else x) * inv
    l = L * ib
    amax = torch.maximum(t.abs().amax(1), l.abs().amax(1))
    factor = torch.where(amax > 0, 448.0 / amax, torch.zeros_like(amax))
    ref_scales = amax / 448.0
    ref = torch.zeros(M, depth, dtype=torch.uint8, device=dev)
    ref[:, :K] = e4m3(t * factor[:, None]); ref[:, K:K + R] = e4m3(l * factor[:, None])
    # A low-rank value rounding the other way moves its code by one step and, when it is the row's largest, the
    # row's amax and so any code by up to one step (even where amax / 448 rounds to the same scale).
    same_scale = scales.view(torch.int32) == ref_scales.view(torch.int32)
    t_steps = (ordinal(codes[:, :K]) - ordinal(ref[:, :K])).abs()
    l_steps = (ordinal(codes[:, K:K + R]) - ordinal(ref[:, K:K + R])).abs()
    pad_bad = int((codes[:, K + R:] != 0).sum())
    unwritten = int((codes == 0xFF).sum()) + int(scales.isnan().sum())
    # Two-pass path on the same input: cuBLAS low-rank (bf16 output) + the quantize kernel.
    lr = (xs[0] @ pd.T).contiguous()
    codes2 = torch.full_like(codes, 0xFF); scales2 = torch.full_like(scales, float("nan"))
    mod.launch(old, (M, 1, 1), (threads, 1, 1), 0, 0, [P(xs[0]), P(inv), P(lr), P(ib), P(codes2), P(scales2), I(K), I(R), I(depth), I(0)])
    torch.cuda.synchronize()
    vs_two_pass = int((codes != codes2).sum())
    good = int(t_steps.max()) <= 1 and int(l_steps.max()) <= 1 and pad_bad == 0 and unwritten == 0
    ok &= good
    lrs = [torch.empty(M, R, dtype=dt, device=dev) for _ in range(3)]
    def two_pass(i, st):
        torch.matmul(xs[i % 3], pd.T, out=lrs[i % 3])
        mod.launch(old, (M, 1, 1), (threads, 1, 1), 0, st.cuda_stream, [P(xs[i % 3]), P(inv), P(lrs[i % 3]), P(ib), P(codes2), P(scales2), I(K), I(R), I(depth), I(0)])
    def low_rank(i, st): torch.matmul(xs[i % 3], pd.T, out=lrs[i % 3])
    tf, t2, tl = gtime(launch), gtime(two_pass), gtime(low_rank)
    print(f"M={M} K={K} R={R} {suffix}: {'OK' if good else 'FAIL'} rows rescaled {int((~same_scale).sum())}, input codes one step off {int(t_steps.sum())}, "
          f"l steps max {int(l_steps.max())} (sum {int(l_steps.sum())}), pad {pad_bad}, unwritten {unwritten}; vs two-pass bytes {vs_two_pass} | "
          f"fused {tf:.1f} us, two-pass {t2:.1f} us (low-rank {tl:.1f}), x {xs[0].numel() * 2 / tf / 1e3:.0f} GB/s", flush=True)
print("ALL OK" if ok else "SOME FAILED")
sys.exit(0 if ok else 1)
