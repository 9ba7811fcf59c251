#!/usr/bin/env python3
"""Numerics of folding the low-rank branch into the fast W4A4 path's e4m3 weights (docs/hopper.md "Session 9"),
on the CPU with torch, for random SVDQuant-like layers: x with outlier channels (×1, ×16, ×64 on 1/64 of them),
smoothing with alpha 0.5, a rank-32 SVD of the smoothed weight, the residual quantized to INT4 per 64-group.
Against the layer's dense equivalent `t · (R + up · downᵀ)ᵀ` (t = smoothed input):
- "today": per-token e4m3 activations, R's codes folded per channel into e4m3, the low-rank values `t · down`
  computed in bf16 and quantized per token, `up` quantized per low-rank column (an approximation of the engine's
  shared-scale scheme that favours it);
- "folded": per-token e4m3 activations, `R + up · downᵀ` rounded to e4m3 per output channel;
- "exact-like": INT4 activations per 64-group (Nunchaku's numerics) with the low-rank branch in bf16.
Run: python3 scripts/prototypes/w4a4_fold_lowrank_numerics.py"""
import torch


def e4m3(v):
    return v.clamp(-448, 448).to(torch.float8_e4m3fn).to(torch.float32)


def per_row(t):
    """e4m3 with one scale per row (amax → 448)."""
    scale = t.abs().amax(1, keepdim=True).clamp_min(1e-30) / 448
    return e4m3(t / scale) * scale


def case(m, n, k, rank=32, outliers=16.0, alpha=0.5):
    x = torch.randn(m, k)
    x[:, torch.randperm(k)[:k // 64]] *= outliers
    w = torch.randn(n, k) / k ** 0.5
    smooth = (x.abs().amax(0) ** alpha / w.abs().amax(0) ** (1 - alpha)).clamp_min(1e-5)
    t = (x / smooth).to(torch.bfloat16).float()
    smoothed = w * smooth
    u, s, v = torch.linalg.svd(smoothed, full_matrices=False)
    up = (u[:, :rank] * s[:rank]).to(torch.bfloat16).float()
    down = v[:rank].T.to(torch.bfloat16).float()
    groups = (smoothed - up @ down.T).view(n, k // 64, 64)
    scales = groups.abs().amax(2, keepdim=True) / 7
    residual = ((groups / scales).round().clamp(-8, 7) * scales).view(n, k)
    dense = t @ (residual + up @ down.T).T
    low_rank = (t @ down).to(torch.bfloat16).float()
    today = per_row(t) @ per_row(residual).T + per_row(low_rank) @ per_row(up.T)
    folded = per_row(t) @ per_row(residual + up @ down.T).T
    tg = t.view(m, k // 64, 64)
    ts = tg.abs().amax(2, keepdim=True) / 7
    exact = ((tg / ts).round().clamp(-8, 7) * ts).view(m, k) @ residual.T + low_rank @ up.T
    error = lambda y: ((y - dense).norm() / dense.norm()).item()
    print(f"M={m} N={n} K={k} outliers ×{outliers:g}: today {error(today):.3e}  folded {error(folded):.3e}  exact-like {error(exact):.3e}")


if __name__ == "__main__":
    torch.manual_seed(0)
    for factor in (1.0, 16.0, 64.0):
        case(512, 1024, 1024, outliers=factor)
    case(512, 1024, 4096)
