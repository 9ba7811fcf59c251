#!/usr/bin/env python3
"""Checks and times scripts/prototypes/w4_fp8_gemm.cu, a W4A4 fast-path GEMM that converts the 4-bit weights to e4m3
in registers (no expansion pass, no e4m3 weight scratch) and carries the low-rank branch as 32 more k columns.

For each FLUX shape (M = 4608 by default): a fresh random SVDQuant-like INT4 layer (codes, group scales, rank-32
proj_up/proj_down, smoothing with outlier channels, bias) and bf16 activations; the tokens' e4m3 codes and low-rank
codes made here as the producing kernel would make them; the output poisoned with NaN first, then compared with a
float32 PyTorch reference of the same numerics (the e4m3 weights a = e4m3(f16((q − 8) · s')) by PyTorch's casts).
The check allows 1.25 × the error PyTorch's FP8 GEMM (fast accumulation) makes on the same operands (with the low-rank
part added in fp32 and the result rounded to bf16, as the kernel's is), plus 1e-3. Also
reported: both numerics against the layer's dense product, and today's engine numerics (the low-rank branch folded
into e4m3 weights) on the same inputs. Timing (CUDA graph of 20 launches, median of 7 replays, median of 3 rounds,
all in one process): the kernel, cuBLAS BF16 on the dense weights, cuBLASLt FP8 with per-tensor scales and PyTorch's
CUTLASS FP8 with per-row scales (both without the expansion today's engine needs before them).

    python3 scripts/w4_fp8_gemm_bench.py [--kernel NAME ...] [--rows 4608] [--json FILE]
"""
import argparse, os, sys
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_bench import load_nvrtc, compile_source, Module, graph_time_us, KERNELS  # noqa: E402
from w4a4_fused_gemm_bench import report, tensor_map_2d  # noqa: E402
from w4_register_a_probe import fragment_index  # noqa: E402

PROTOTYPES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prototypes")
SHAPES = [(3072, 3072), (9216, 3072), (12288, 3072), (3072, 12288), (21504, 3072), (3072, 15360)]
RANK = 32
P = lambda t: ("p", t.data_ptr()); I = lambda v: ("i", int(v))
DEFAULT_KERNELS = ["w4_fp8_gemm_n256_s3_r232_v0", "w4_fp8_gemm_n240_s4_r232_v0", "w4_fp8_gemm_n192_s5_r0_v0"]


def e4m3(v):
    return v.float().clamp(-448, 448).to(torch.float8_e4m3fn)


def geometry(name):
    """BN, stages and timing variant from the entry point's name (w4_fp8_gemm_n<BN>_s<stages>_r<registers>_v<variant>),
    and its shared memory."""
    bn, stages, _, variant = (int(p[1:]) for p in name.split("_")[-4:])
    stage = (bn * 128 + 8704 + 1023) // 1024 * 1024
    return bn, stages, variant, stages * stage + 2 * bn * 128 + 2 * stages * 8 + 1024


def make_layer(M, N, K, dev, g):
    """A random INT4 SVDQuant layer and its input, with every operand the kernel and the references read."""
    q = torch.randint(0, 16, (N, K), device=dev, generator=g, dtype=torch.int32)       # value q − 8
    s = (torch.rand(N, K // 64, device=dev, generator=g) * 0.9 + 0.1) * 2e-3              # group scales
    s = s.to(torch.bfloat16).float()
    up = (torch.randn(N, RANK, device=dev, generator=g) * 0.05).to(torch.bfloat16).float()
    down = (torch.randn(K, RANK, device=dev, generator=g) * 0.05).to(torch.bfloat16).float()
    x = torch.randn(M, K, device=dev, generator=g)
    outliers = torch.randperm(K, device=dev, generator=g)[:K // 64]
    x[:, outliers] *= 20
    x = x.to(torch.bfloat16)
    smooth = torch.rand(K, device=dev, generator=g) * 1.5 + 0.5
    smooth[outliers] *= 8
    smooth = smooth.to(torch.bfloat16).float()
    bias = (torch.randn(N, device=dev, generator=g) * 0.1).to(torch.bfloat16).float()
    return q, s, up, down, x, smooth, bias


def operands(q, s, up, down, x, smooth):
    """What the kernel reads, made as the producers would: per-token e4m3 codes of t = x / smooth and of the low-rank
    values l = t · (smooth ⊙ proj_down), e4m3 proj_up per channel, the weights' f16 scales relative to the unit."""
    t = x.float() * (1 / smooth).to(torch.bfloat16).float()
    amax = t.abs().amax(1)
    sx = amax / 448
    xc = e4m3(t * torch.where(amax > 0, 448 / amax, torch.zeros_like(amax))[:, None])
    dn = (smooth[:, None] * down).to(torch.bfloat16).float()
    l = t @ dn
    lmax = l.abs().amax(1)
    sl = lmax / 448
    lc = e4m3(l * torch.where(lmax > 0, 448 / lmax, torch.zeros_like(lmax))[:, None])
    umax = up.abs().amax(1)
    su = umax / 448
    upc = e4m3(up * torch.where(umax > 0, 448 / umax, torch.zeros_like(umax))[:, None])
    unit = 8 * s.amax(1) / 448
    s16 = (s / unit[:, None]).half()
    a = e4m3(((q - 8).half() * s16.repeat_interleave(64, 1)).float())
    # The kernel's factors (w4_fp8_gemm.cu, "the low-rank step"): rows whose low-rank codes are zero keep sx (u).
    token_pre = torch.where(sl > 0, sx / sl, torch.ones_like(sx))
    token_final = torch.where(sl > 0, sl, sx)
    channel_pre = torch.where(su > 0, unit / su, torch.ones_like(su))
    channel_final = torch.where(su > 0, su, unit)
    return dict(t=t, dn=dn, xc=xc, sx=sx, lc=lc, sl=sl, upc=upc, su=su, unit=unit, s16=s16, a=a, token_pre=token_pre,
                token_final=token_final, channel_pre=channel_pre, channel_final=channel_final)


def reference(o, bias):
    main = (o["xc"].float() @ o["a"].float().T) * o["sx"][:, None] * o["unit"][None, :]
    low = (o["lc"].float() @ o["upc"].float().T) * o["sl"][:, None] * o["su"][None, :]
    return main + low + bias


def folded_numerics(q, s, up, o, bias):
    """Today's engine numerics on the same inputs: the low-rank branch folded into e4m3 weights per channel unit."""
    v = (q - 8).float() * s.repeat_interleave(64, 1)
    L = up @ o["dn"].T
    unit = (8 * s.amax(1) + (up.abs() * o["dn"].abs().amax(0)[None, :]).sum(1)) / 448
    w8 = e4m3((v + L) / unit[:, None]).float()
    return (o["xc"].float() @ w8.T) * o["sx"][:, None] * unit[None, :] + bias


def pack_weights(q, s16):
    """The kernel's weight chunks [N/128][K/128][8704] bytes: codes [warpgroup][step][thread][2 words], then scales
    [warpgroup][row][2 groups] (f16)."""
    N, K = q.shape
    tiles, steps = N // 128, K // 32
    rows, cols = fragment_index()
    flat = (rows * 32 + cols).reshape(-1).to(q.device)                                  # [128 · 16]
    slices = q.view(tiles, 2, 64, steps, 32).permute(0, 1, 3, 2, 4).reshape(tiles, 2, steps, 2048)
    values = slices[..., flat].view(tiles, 2, steps, 128, 16).long()
    order = [0, 2, 4, 6, 1, 3, 5, 7]
    def word(v):                                                                        # nibble i ← value order[i]
        return sum(v[..., order[i]] << (4 * i) for i in range(8))
    words = torch.stack([word(values[..., 0:8]), word(values[..., 8:16])], -1)          # [tiles, 2, steps, 128, 2]
    words = torch.where(words >= 2 ** 31, words - 2 ** 32, words).to(torch.int32)
    codes = words.view(tiles, 2, K // 128, 4, 128, 2).permute(0, 2, 1, 3, 4, 5).contiguous()
    codes = codes.view(torch.uint8).reshape(tiles, K // 128, 8192)
    scales = s16.view(tiles, 2, 64, K // 128, 2).permute(0, 3, 1, 2, 4).contiguous().view(torch.uint8)
    scales = scales.reshape(tiles, K // 128, 512)
    return torch.cat([codes, scales], -1).contiguous()


def pack_up(upc):
    """Per channel tile [warpgroup][thread] the thread's 16 bytes of the proj_up fragment (a0..a3)."""
    N = upc.shape[0]
    rows, cols = fragment_index()
    flat = (rows * 32 + cols).reshape(-1).to(upc.device)
    return upc.view(torch.uint8).view(N // 128, 2, 64 * 32)[..., flat].contiguous()     # [tiles, 2, 128 · 16]


def diagnose(y, ref, fp8, o, bias, launch):
    """Prints the kernel's and PyTorch FP8's norm and max errors against the reference, the worst element, and the
    errors of the main and low-rank parts alone (re-running the kernel with the other part's codes zeroed)."""
    def report(what, got, want):
        d = (got.float() - want).abs()
        worst = int(d.argmax())
        print(f"      {what}: norm {(d.norm() / want.norm()).item():.2e}, max {(d.max() / want.abs().max()).item():.2e} "
              f"at token {worst // want.shape[1]}, channel {worst % want.shape[1]} ({got.reshape(-1)[worst].item():.4g} "
              f"against {want.reshape(-1)[worst].item():.4g})")
    report("kernel", y, ref)
    report("torch fp8", fp8, ref)
    main = (o["xc"].float() @ o["a"].float().T) * o["sx"][:, None] * o["unit"][None, :] + bias
    low = (o["lc"].float() @ o["upc"].float().T) * o["sl"][:, None] * o["su"][None, :]
    print(f"      low-rank part / main part (norms): {(low.norm() / main.norm()).item():.3f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel", action="append", default=None)
    parser.add_argument("--rows", type=int, action="append", default=None)
    parser.add_argument("--shape", action="append", default=None, help="N,K (default: the six FLUX shapes)")
    parser.add_argument("--json")
    parser.add_argument("--no-time", action="store_true")
    parser.add_argument("--diagnose", action="store_true", help="where the kernel's output differs from the reference")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    torch.zeros(1, device=dev)
    cubin, log = compile_source(load_nvrtc(), "w4_fp8_gemm.cu", folder=PROTOTYPES, includes=[KERNELS])
    print("\n".join(l for l in log.splitlines() if "registers" in l or "spill" in l or "Compiling" in l))
    module = Module(cubin)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    kernels = args.kernel or DEFAULT_KERNELS
    g = torch.Generator(device=dev); g.manual_seed(20261122)
    checks, timing = [], []
    for M in args.rows or [4608]:
        for N, K in [tuple(int(v) for v in shape.split(",")) for shape in args.shape] if args.shape else SHAPES:
            q, s, up, down, x, smooth, bias = make_layer(M, N, K, dev, g)
            o = operands(q, s, up, down, x, smooth)
            ref = reference(o, bias)
            dense = o["t"] @ ((q - 8).float() * s.repeat_interleave(64, 1) + up @ o["dn"].T).T + bias
            folded = folded_numerics(q, s, up, o, bias)
            scale = ref.abs().max().item()
            fp8 = torch._scaled_mm(o["xc"], o["a"].T, scale_a=o["sx"][:, None], scale_b=o["unit"][None, :],
                                   out_dtype=torch.bfloat16, use_fast_accum=True).float()
            fp8 = fp8 + (o["lc"].float() @ o["upc"].float().T) * o["sl"][:, None] * o["su"][None, :] + bias
            fp8 = fp8.to(torch.bfloat16).float()                          # the output rounding the kernel has too
            tolerance = 1.25 * (fp8 - ref).abs().max().item() / scale + 1e-3
            row = dict(shape=[M, N, K], numerics_vs_dense=(ref - dense).norm().item() / dense.norm().item(),
                       folded_vs_dense=(folded - dense).norm().item() / dense.norm().item())
            xbuf = torch.zeros(M, K + 128, dtype=torch.uint8, device=dev)
            xbuf[:, :K] = o["xc"].view(torch.uint8)
            xbuf[:, K:K + RANK] = o["lc"].view(torch.uint8)
            weights = pack_weights(q, o["s16"])
            up_fragments = pack_up(o["upc"])
            channel_pre, channel_final = o["channel_pre"].contiguous(), o["channel_final"].contiguous()
            y = torch.empty(M, N, dtype=torch.bfloat16, device=dev)
            launches = {}
            for name in kernels:
                bn, stages, variant, shared = geometry(name)
                padded = (M + bn - 1) // bn * bn
                token_pre = torch.zeros(padded, device=dev); token_pre[:M] = o["token_pre"]
                token_final = torch.zeros(padded, device=dev); token_final[:M] = o["token_final"]
                function = module.function(name, shared)
                x_map = tensor_map_2d(module, xbuf, 0, K + 128, M, K + 128, 128, bn)
                y_map = tensor_map_2d(module, y, 9, N, M, N * 2, 64, bn)
                tiles = (N // 128) * ((M + bn - 1) // bn)
                grid = (min(tiles, sms), 1, 1)

                def launch(i, stream, function=function, x_map=x_map, y_map=y_map, grid=grid, shared=shared, token_pre=token_pre,
                           token_final=token_final):
                    module.launch(function, grid, (384, 1, 1), shared, stream.cuda_stream if stream else 0,
                                  [("m", x_map), ("m", y_map), P(weights), P(up_fragments), P(token_pre),
                                   P(token_final), P(channel_pre), P(channel_final), P(bias), I(M), I(N), I(K)])
                launches[name] = launch
                if variant:                                             # timing variants compute wrong results
                    if args.no_time:
                        launch(0, None)                                 # once, for a profiler
                    continue
                y.view(torch.int16).fill_(-1)                                                # 0xFFFF: NaN
                launch(0, None); torch.cuda.synchronize()
                if args.diagnose:
                    diagnose(y, ref, fp8, o, bias, launch)
                finite = bool(torch.isfinite(y).all())
                error = (y.float() - ref).abs().max().item() / scale
                ok = finite and error < tolerance
                row[f"{name}_vs_dense"] = (y.float() - dense).norm().item() / dense.norm().item()
                checks.append(dict(shape=[M, N, K], kernel=name, ok=ok, error=error, tolerance=tolerance, finite=finite))
                print(f"{'OK ' if ok else 'BAD'} {name} M={M} N={N} K={K}: vs reference {error:.2e} (tolerance "
                      f"{tolerance:.2e}); vs dense {row[f'{name}_vs_dense']:.2e} (these numerics {row['numerics_vs_dense']:.2e}, "
                      f"folded {row['folded_vs_dense']:.2e})", flush=True)
            if args.no_time:
                continue
            wb = ((q - 8).float() * s.repeat_interleave(64, 1)).to(torch.bfloat16)
            xb = x.contiguous()
            out = torch.empty(M, N, dtype=torch.bfloat16, device=dev)
            one = torch.ones((), device=dev)
            sxc, unitr = o["sx"][:, None].contiguous(), o["unit"][None, :].contiguous()
            launches["cublas_bf16"] = lambda i, st: torch.matmul(xb, wb.T, out=out)
            launches["cublaslt_fp8"] = lambda i, st: torch._scaled_mm(o["xc"], o["a"].T, scale_a=one, scale_b=one,
                                                                      out_dtype=torch.bfloat16, use_fast_accum=True)
            launches["cutlass_fp8_rowwise"] = lambda i, st: torch._scaled_mm(o["xc"], o["a"].T, scale_a=sxc, scale_b=unitr,
                                                                             out_dtype=torch.bfloat16, use_fast_accum=True)
            for f in launches.values(): graph_time_us(f)
            rounds = [{n: graph_time_us(f) for n, f in launches.items()} for _ in range(3)]
            times = {n: sorted(r[n] for r in rounds)[1] for n in launches}
            flops = 2 * M * N * K
            print(f"    M={M} N={N} K={K}: " + ", ".join(
                f"{n} {t:.1f} us ({flops / t / 1e6:.0f} TF/s, {times['cublas_bf16'] / t:.2f}x bf16)" for n, t in times.items()),
                flush=True)
            timing.append(dict(us=times, **row))
    report(args, checks, timing)


if __name__ == "__main__":
    main()
