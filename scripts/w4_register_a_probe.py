#!/usr/bin/env python3
"""Checks and times scripts/prototypes/w4_register_a_probe.cu: m64n256k32 e4m3 wgmma loops over a B tile held in
shared memory, with A (i) from shared memory, (ii) from registers, the same fragment every step, (iii) from
registers converted per step from 4-bit codes and per-(row, 64-column) f16 scales: each thread loading its codes from
L2 (mode 2), the same codes again without loads (mode 3), or the codes brought into a shared-memory ring by a
producer warp's bulk copies (mode 4, as a GEMM would). No memory traffic but the codes (a few MB, L2-resident), so
the times say what the tensor pipe and the issue slots allow.

Checks (fresh random inputs, output poisoned with NaN, 8 k-steps): modes 0–2 and 4 against a float64 PyTorch product of
the same e4m3 values (modes 2 and 4: a = e4m3(f16((q − 8) · s)), the f16 product rounded by PyTorch's half cast, then its
e4m3 cast). Mode 3 (mode 2 converting its first four steps' codes over and over, to time the conversion without
the loads) is timed only. Timing: one block per multiprocessor, --steps k-steps (default 4096), median of 10 launches after 3,
each mode's TFLOP/s and its ratio to mode (i) in the same process.

    python3 scripts/w4_register_a_probe.py [--steps 4096]
"""
import argparse, os, statistics, sys
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attention_bench import load_nvrtc, compile_source, Module, KERNELS  # noqa: E402

PROTOTYPES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prototypes")
SHARED = 256 * 128 + 128 * 128 + 1024
SHARED_RING = SHARED + 4 * (2 * 4 * 128 * 8 + 2 * 64 * 2 * 2) + 4 * 16     # mode 4: four stages and their mbarriers
P = lambda t: ("p", t.data_ptr()); I = lambda v: ("i", int(v))
MODES = ["A from shared memory", "A from registers, fixed", "A from registers, converted from 4-bit codes",
         "as 2, the first codes converted again (no loads)", "as 2, codes through a shared-memory ring (bulk copies)"]


def e4m3(v):
    return v.float().cpu().clamp(-448, 448).to(torch.float8_e4m3fn)


def fragment_index():
    """Row and column of each of a thread's 16 fragment values (a0..a3, 4 each) within a 64 × 32 k-step: [128, 16]."""
    thread = torch.arange(128)
    warp, lane = thread // 32, thread % 32
    g, t = lane // 4, lane % 4
    j = torch.arange(4)
    rows, cols = [], []
    for row_offset, col_offset in [(0, 0), (8, 0), (0, 16), (8, 16)]:
        rows.append((16 * warp + g + row_offset)[:, None].expand(128, 4))
        cols.append((4 * t + col_offset)[:, None] + j[None, :])
    return torch.cat(rows, 1), torch.cat(cols, 1)


def words(values):
    """uint32 words (as int32) of 8 nibbles n0..n7 (n0 lowest) from a [..., 8] integer tensor."""
    w = sum(values[..., i].long() << (4 * i) for i in range(8))
    return torch.where(w >= 2 ** 31, w - 2 ** 32, w).to(torch.int32)


def pack_codes(q, steps):
    """q [2, 64, 32·steps] codes 0..15 → the kernel's [2, steps, 128, 2] words: per thread and step, word 0 holds
    a0 (row g) and a1 (row g + 8) as n0 = a0[0], n4 = a0[1], n1 = a0[2], n5 = a0[3], n2/n6/n3/n7 likewise for a1;
    word 1 the same for a2 and a3."""
    rows, cols = fragment_index()
    per_step = torch.stack([q[:, rows, cols + 32 * s] for s in range(steps)], 1)   # [2, steps, 128, 16]
    def word(values):                     # values [..., 8] = a_x[0..3], a_y[0..3]; nibble i takes value [0,2,4,6,1,3,5,7][i]
        return words(values[..., [0, 2, 4, 6, 1, 3, 5, 7]])
    return torch.stack([word(per_step[..., 0:8]), word(per_step[..., 8:16])], -1)


def fragments_of(a):
    """A [2, 64, 32] e4m3 → the kernel's per-thread fragment words [2, 128, 4] (bytes v0..v3, v0 lowest)."""
    rows, cols = fragment_index()
    bytes_ = a.view(torch.uint8)[:, rows, cols].long()                          # [2, 128, 16]
    w = sum(bytes_[..., i::4] << (8 * i) for i in range(4))                     # [2, 128, 4]
    return torch.where(w >= 2 ** 31, w - 2 ** 32, w).to(torch.int32)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4096)
    args = parser.parse_args()
    dev = torch.device("cuda")
    torch.zeros(1, device=dev)            # the primary context, which the module loads into
    nvrtc = load_nvrtc()
    cubin, log = compile_source(nvrtc, "w4_register_a_probe.cu", folder=PROTOTYPES, includes=[KERNELS])
    print("\n".join(line for line in log.splitlines() if "registers" in line or "spill" in line))
    module = Module(cubin)
    kernels = [module.function(f"w4_register_a_probe_mode{mode}", SHARED_RING if mode == 4 else SHARED) for mode in range(5)]
    stream = torch.cuda.current_stream().cuda_stream
    blocks = torch.cuda.get_device_properties(0).multi_processor_count

    def make(steps, seed):
        g = torch.Generator().manual_seed(seed)
        b = e4m3(torch.randn(256, 128, generator=g) * 4)
        a_tiles = e4m3(torch.randn(2, 64, 128, generator=g) * 4)
        a_fixed = e4m3(torch.randn(2, 64, 32, generator=g) * 4)
        q = torch.randint(0, 16, (2, 64, 32 * steps), generator=g)
        scales = (torch.rand(2, 64, steps // 2, generator=g) * 1.5 + 0.05).half()
        return b, a_tiles, a_fixed, q, scales

    def run(mode, steps, inputs, out):
        b, a_tiles, a_fixed, q, scales = inputs
        codes, scale_bits = pack_codes(q, steps), scales.view(torch.int16)
        if mode == 4:                          # per chunk of 4 steps: [chunk][warpgroup][step][thread], [chunk][warpgroup][row][2]
            codes = codes.reshape(2, steps // 4, 4, 128, 2).permute(1, 0, 2, 3, 4)
            scale_bits = scale_bits.reshape(2, 64, steps // 4, 2).permute(2, 0, 1, 3)
        tensors = [b.view(torch.uint8).to(dev), a_tiles.view(torch.uint8).to(dev), codes.contiguous().to(dev),
                   scale_bits.contiguous().to(dev), fragments_of(a_fixed).to(dev)]
        threads, shared = (288, SHARED_RING) if mode == 4 else (256, SHARED)
        def launch():
            module.launch(kernels[mode], (blocks, 1, 1), (threads, 1, 1), shared, stream,
                          [P(t) for t in tensors] + [P(out), I(steps)])
        return launch

    def reference(mode, steps, inputs):
        b, a_tiles, a_fixed, q, scales = inputs
        bf = b.double()
        if mode == 0:
            counts = [sum(1 for s in range(steps) if s % 4 == j) for j in range(4)]
            return sum(counts[j] * a_tiles.double()[:, :, 32 * j:32 * j + 32] @ bf[:, 32 * j:32 * j + 32].T for j in range(4))
        if mode == 1:
            return sum(a_fixed.double() @ bf[:, 32 * (s % 4):32 * (s % 4) + 32].T for s in range(steps))
        s = scales.float().repeat_interleave(64, -1)            # modes 2 and 4                                # [2, 64, K]
        a = e4m3(((q.float() - 8) * s).half().float()).double()
        bfull = torch.cat([bf] * (steps // 4), 1)
        return a @ bfull.T

    ok = True
    for mode in [0, 1, 2, 4]:
        steps = 8
        inputs = make(steps, 100 + mode)
        out = torch.full((blocks, 2, 64, 256), float("nan"), device=dev)
        run(mode, steps, inputs, out)()
        torch.cuda.synchronize()
        ref = reference(mode, steps, inputs)
        worst = 0.0
        for block in [0, blocks - 1]:
            got = out[block].double().cpu()
            worst = max(worst, ((got - ref).norm() / ref.norm()).item() if torch.isfinite(got).all() else float("inf"))
        passed = worst < 2e-3
        ok &= passed
        print(f"check mode {mode} ({MODES[mode]}): relative error {worst:.2e} {'ok' if passed else 'FAIL'}")

    steps = args.steps
    results = []
    for mode in range(5):
        inputs = make(steps, 200 + mode)
        out = torch.empty((blocks, 2, 64, 256), device=dev)
        launch = run(mode, steps, inputs, out)
        for _ in range(3): launch()
        torch.cuda.synchronize()
        times = []
        for _ in range(10):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(); launch(); end.record(); end.synchronize()
            times.append(start.elapsed_time(end))
        ms = statistics.median(times)
        results.append(ms)
    flops = 2 * 64 * 256 * 32 * steps * 2 * blocks
    for mode, ms in enumerate(results):
        print(f"mode {mode} ({MODES[mode]}): {ms:.3f} ms, {flops / ms / 1e9:.0f} TFLOP/s, {results[0] / ms:.3f}× mode 0")
    print("ALL OK" if ok else "CHECK FAILED")


if __name__ == "__main__":
    main()
