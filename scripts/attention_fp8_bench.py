#!/usr/bin/env python3
"""Checks and times the float8 attention path (attention_fp8_operands.cu + the `…_fp8_…` entry points of
attention_wgmma.cu) straight from the kernel sources, on an H100/H200.

For each shape: fresh random bf16 q, k, v; the two operand passes against a PyTorch reference of the same
quantization (codes and scales compared bit for bit, v transposed and permuted as the kernel expects); the attention
output (poisoned with NaN first) against float32 attention of the original inputs (the error a user sees) and of
the dequantized codes (the kernel alone), next to the bf16 wgmma kernel's error; for several P shifts (`--shifts`).
Then times, interleaved in one process (at the app's P shift): the fp8 kernel alone, fp8 with its operand passes,
the bf16 wgmma kernel and torch SDPA (cuDNN), at S = 4608 and 1536 (B = 1, H = 24, d = 128).

`--variant FOLDER` (repeatable) also checks and times the kernels of a modified copy of the kernel folder: its fp8
kernel at the app's P shift (errors as above, and how many outputs differ from the checked-out kernel's), its bf16
kernel (error, and whether its output has the same bits as the checked-out kernel's), both timed in the same
interleaved rounds. The sources compile in parallel. A copy may change the fp8 key tile, or split the last round of
work units along the keys (`fp8_geometry`; scripts/variants/attention_wgmma_last_round_split.patch): a split copy
gets its workspace, must give the checked-out kernel's bits outside the split units (and everywhere without its
workspace), and is also timed without the split (`--diagnose-split`: and without the counters' memset).
`--timing-shapes` picks the timed S × H (B = 1).

    python3 scripts/attention_fp8_bench.py [--rounds 3] [--json FILE] [--variant FOLDER ...]
"""
import argparse
import concurrent.futures
import math
import os
import re
import statistics

import numpy as np
import torch

import attention_bench as base


def tiled_map(module, tensor, data_type, dims, strides, box, swizzle=3):
    """A 128-byte CUtensorMap (tiled, `swizzle` 3 = 128-byte or 2 = 64-byte, 256-byte L2 promotion, zero fill) of
    `tensor`."""
    import ctypes
    storage = ctypes.create_string_buffer(128 + 64)
    aligned = (ctypes.addressof(storage) + 63) // 64 * 64
    rank = len(dims)
    module.check(module.cuda.cuTensorMapEncodeTiled(
        ctypes.c_void_p(aligned), ctypes.c_int(data_type), ctypes.c_uint32(rank), ctypes.c_void_p(tensor.data_ptr()),
        (ctypes.c_uint64 * rank)(*dims), (ctypes.c_uint64 * (rank - 1))(*strides), (ctypes.c_uint32 * rank)(*box),
        (ctypes.c_uint32 * rank)(*([1] * rank)), ctypes.c_int(0), ctypes.c_int(swizzle), ctypes.c_int(3), ctypes.c_int(0)),
        "cuTensorMapEncodeTiled")
    return ctypes.string_at(aligned, 128)


def fp8_geometry(folder):
    """The e4m3 kernel's launch geometry for `folder`'s attention_wgmma.cu: keys per tile, shared memory (128 query
    rows, K and V rings of 128-byte rows, the mbarriers, 1024 bytes of alignment slack) and the v map's box and
    swizzle. The checked-out kernel (AttentionFP8Launch mirrors it) has 128 keys, `kStages` stages and 128-key v boxes
    with the 128-byte swizzle. A variant copy may declare `kFP8KeysPerTile` (and `kFP8Stages`): it is launched with K
    boxes of that many rows and v boxes of 64 keys with the 64-byte swizzle, the layout of the larger-key-tile
    experiment (docs/hopper-attention.md). `split`: the copy's e4m3 entry points take the last-round split workspace
    (two more pointers; scripts/variants/attention_wgmma_last_round_split.patch)."""
    text = open(os.path.join(folder, "attention_wgmma.cu")).read()
    declared = re.search(r"constexpr int kFP8KeysPerTile = (\d+);", text)
    stages = int(re.search(r"constexpr int k(?:FP8)?Stages = (\d+);", text).group(1))
    keys = int(declared.group(1)) if declared else 128
    return dict(keys=keys, shared=128 * 128 + 2 * stages * keys * 128 + (2 + 4 * stages) * 8 + 1024,
                value_box=64 if declared else 128, value_swizzle=2 if declared else 3,
                split="u32* splitCounters, float* splitSlots" in text)


def split_workspace(units, tiles, grid):
    """The last-round split workspace of a variant copy with the split (its kernel's `Schedule`,
    scripts/variants/attention_wgmma_last_round_split.patch): u32 counters (one per split unit and consumer warp) and
    float32 slots ((tiles − 1) // run + 2 per split unit, 256 threads × 68 values each; run: the split tiles per
    block); (0, 0) without a split."""
    tail = units % grid
    if tail == 0 or units < grid:
        return 0, 0
    run = (tail * tiles + grid - 1) // grid
    return tail * 8, tail * ((tiles - 1) // run + 2) * 256 * 68


def split_rows(batch, tokens, heads, multiprocessors):
    """[B, S, H] booleans, True where a query belongs to a unit of the split last round (units: 128 queries of one
    (sample, head), query blocks fastest; the grid has min(units, multiprocessors) blocks)."""
    blocks = (tokens + 127) // 128
    units = blocks * heads * batch
    grid = min(units, multiprocessors)
    whole = units - units % grid
    index = ((torch.arange(batch)[:, None, None] * heads + torch.arange(heads)[None, None, :]) * blocks
             + (torch.arange(tokens) // 128)[None, :, None])
    return (index >= whole).cuda()


def padded(tokens):
    return (tokens + 15) // 16 * 16


def value_order(length):
    """Index i of the stored v positions: position l of each group of 16 holds key 8((l>>1)&1) + 2(l>>2) + (l&1)."""
    l = torch.arange(length)
    within = l & 15
    return (l - within) + ((within >> 1) & 1) * 8 + (within >> 2) * 2 + (within & 1)


def reference_operands(q, k, v):
    """Codes (uint8) and scales [3, B, H] of the operand passes, computed by PyTorch."""
    codes, scales = [], []
    for x in (q, k, v):
        # IEEE float32 divisions on the host (PyTorch divides by a scalar through its reciprocal).
        amax = x.float().abs().amax(dim=(1, 3)).cpu().numpy()  # [B, H]
        factor = np.where(amax > 0, np.float32(448) / np.where(amax > 0, amax, np.float32(1)), np.float32(0))
        factor = torch.from_numpy(factor.astype(np.float32)).to(x.device)
        y = (x.float() * factor[:, None, :, None]).clamp(-448, 448).to(torch.float8_e4m3fn)
        codes.append(y)
        scales.append(torch.from_numpy((amax / np.float32(448)).astype(np.float32)).to(x.device))
    batch, tokens, heads, d = v.shape
    vt = torch.zeros(batch, heads, d, padded(tokens), dtype=torch.float8_e4m3fn, device=v.device)
    vt[..., :tokens] = codes[2].permute(0, 2, 3, 1)
    vt = vt[..., value_order(padded(tokens)).to(v.device)].contiguous()
    return codes[0], codes[1], vt, torch.stack(scales)


def attention_reference(q, k, v):
    """float32 softmax(q·kᵀ/√d)·v of [B, S, H, d] operands."""
    scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) / math.sqrt(q.shape[-1])
    return torch.einsum("bhqk,bkhd->bqhd", scores.softmax(dim=-1), v.float())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--shifts", default="0,8,8.807354922057604", help="log2 of the largest P before rounding")
    parser.add_argument("--variant", action="append", default=[], help="a modified copy of the kernel folder")
    parser.add_argument("--timing-shapes", default="4608x24,1536x24",
                        help="S x H of the timed shapes (B = 1); e.g. 4608x22 (792 units: 6 whole rounds on 132 SMs)")
    parser.add_argument("--diagnose-split", action="store_true",
                        help="also time split variants without the counters' memset (no merges: wrong output)")
    parser.add_argument("--json")
    args = parser.parse_args()
    nvrtc = base.load_nvrtc()
    sources = [("attention_wgmma.cu", base.KERNELS), ("attention_fp8_operands.cu", base.KERNELS)]
    sources += [("attention_wgmma.cu", folder) for folder in args.variant]
    with concurrent.futures.ThreadPoolExecutor(len(sources)) as pool:  # NVRTC runs outside the GIL
        compiled = list(pool.map(lambda source: base.compile_source(nvrtc, *source), sources))
    for (name, folder), (_, log) in zip(sources, compiled):
        if name == "attention_wgmma.cu":
            print(folder + ":\n" + "\n".join(line for line in log.splitlines() if "fp8" in line or "C75" in line))
    stream = torch.cuda.current_stream().cuda_stream  # creates PyTorch's context, which the modules load into
    operands = base.Module(compiled[1][0])
    multiprocessors = torch.cuda.get_device_properties(0).multi_processor_count
    bf16_shared = base.wgmma_launch(128)["shared"]
    # (label, (fp8 kernel, its geometry), bf16 kernel, module) of the checked-out kernel file, then of each variant.
    kernels = []
    for label, folder, (cubin, _) in [("", base.KERNELS, compiled[0])] + [
            (" " + os.path.basename(os.path.normpath(folder)), folder, compiled[2 + i]) for i, folder in enumerate(args.variant)]:
        module = base.Module(cubin)
        geometry = fp8_geometry(folder)
        kernels.append((label, (module.function("nunchaku_attention_wgmma_fp8_bf16_d128", geometry["shared"]), geometry),
                        module.function("nunchaku_attention_wgmma_bf16_d128", bf16_shared), module))
        print(f"fp8 kernel{label}: {geometry}")
    attention, fp8_kernel, bf16_kernel = kernels[0][3], kernels[0][1], kernels[0][2]
    app_shift = 8.0  # AttentionFP8Launch.weightShift
    amax_kernel = operands.function("nunchaku_attention_fp8_amax_bf16", 0)
    codes_kernel = operands.function("nunchaku_attention_fp8_codes_bf16", 0)
    scale_log2 = 1.4426950408889634 / math.sqrt(128)

    def operand_passes(q, k, v):
        """Launchers of the two passes and their outputs."""
        batch, tokens, heads, d = q.shape
        chunks = (tokens + 63) // 64
        partial = torch.empty(3, batch, heads, chunks, device="cuda")
        q8 = torch.full(q.shape, 0x7F, dtype=torch.uint8, device="cuda")
        k8 = torch.full(q.shape, 0x7F, dtype=torch.uint8, device="cuda")
        vt8 = torch.full((batch, heads, d, padded(tokens)), 0x7F, dtype=torch.uint8, device="cuda")
        scales = torch.full((3, batch, heads), float("nan"), device="cuda")
        grid = (chunks, heads, 3 * batch)
        pointers = [("p", x.data_ptr()) for x in (q, k, v)]

        def launch():
            operands.launch(amax_kernel, grid, (256, 1, 1), 0, stream, pointers + [("p", partial.data_ptr()), ("i", tokens)])
            operands.launch(codes_kernel, grid, (256, 1, 1), 0, stream, pointers + [
                ("p", partial.data_ptr()), ("p", q8.data_ptr()), ("p", k8.data_ptr()), ("p", vt8.data_ptr()),
                ("p", scales.data_ptr()), ("i", tokens), ("i", padded(tokens))])
        return launch, (q8, k8, vt8, scales)

    def fp8_attention(q8, k8, vt8, scales, o, shift, keys, kernel=None, split=True, zero=True):
        """A launcher of an fp8 kernel; a kernel with the last-round split gets its workspace (counters zeroed before
        each launch, as the app's memset does) unless `split` is False. `zero` False skips the zeroing after the first
        launch: no piece merges any more (wrong output), for timing the split without its memset and merges."""
        function, geometry = kernel or fp8_kernel
        batch, queries, heads, d = o.shape
        spad = vt8.shape[-1]
        maps = [tiled_map(attention, x, 0, (d, heads, x.shape[1], batch), (d, heads * d, x.shape[1] * heads * d), (128, 1, rows, 1))
                for x, rows in ((q8, 128), (k8, geometry["keys"]))]
        maps.append(tiled_map(attention, vt8, 0, (spad, d, heads, batch), (spad, d * spad, heads * d * spad),
                              (geometry["value_box"], 128, 1, 1), geometry["value_swizzle"]))
        units = (queries + 127) // 128 * heads * batch
        grid = min(units, multiprocessors)
        arguments = [("m", m) for m in maps] + [("p", o.data_ptr()), ("p", 0), ("i", queries), ("i", keys), ("i", heads),
                                                ("i", batch), ("f", scale_log2), ("p", scales.data_ptr()), ("f", shift)]
        if not geometry["split"]:
            return lambda: attention.launch(function, (grid, 1, 1), (384, 1, 1), geometry["shared"], stream, arguments)
        counter_count, slot_count = split_workspace(units, (keys + 127) // 128, grid) if split else (0, 0)
        counters = torch.empty(max(counter_count, 1), dtype=torch.int32, device="cuda")
        slots = torch.empty(max(slot_count, 1), dtype=torch.float32, device="cuda")
        arguments = arguments + [("p", counters.data_ptr() if counter_count else 0), ("p", slots.data_ptr() if slot_count else 0)]
        zeroed = []

        def launch():
            if counter_count and (zero or not zeroed):
                counters.zero_()
                zeroed.append(True)
            attention.launch(function, (grid, 1, 1), (384, 1, 1), geometry["shared"], stream, arguments)
        return launch

    def bf16_attention(q, k, v, o, kernel=None):
        batch, queries, heads, d = q.shape
        units = (queries + 127) // 128 * heads * batch
        arguments = [("m", attention.tensor_map(x)) for x in (q, k, v)] + [
            ("p", o.data_ptr()), ("p", 0), ("i", queries), ("i", k.shape[1]), ("i", heads), ("i", batch), ("f", scale_log2)]
        function = kernel or bf16_kernel
        return lambda: attention.launch(function, (min(units, multiprocessors), 1, 1), (384, 1, 1), bf16_shared, stream, arguments)

    shifts = [float(s) for s in args.shifts.split(",")]
    generator = torch.Generator(device="cuda").manual_seed(4321)
    results = []
    # (B, H, S, query scale): FLUX 1024² and 512², ragged lengths (tails, Spad > S), a peaked softmax (q × 4).
    # Split by a last-round split copy (more units than multiprocessors, not a whole number of rounds): 4608, 1536,
    # 3000 × 2 samples (ragged key tail in the split units), 700 × 40 heads (runs of 5 tiles over 6-tile units).
    cases = [(1, 24, 4608, 1.0), (1, 24, 1536, 1.0), (2, 3, 333, 1.0), (1, 2, 1, 1.0), (2, 5, 700, 1.0), (1, 24, 4608, 4.0),
             (1, 4, 1000, 4.0), (2, 24, 3000, 1.0), (1, 40, 700, 1.0)]
    print("\n== correctness (relative L2 error; vs fp32 attention of the bf16 inputs, and of the dequantized codes)")
    for batch, heads, tokens, query_scale in cases:
        q = (torch.randn(batch, tokens, heads, 128, device="cuda", generator=generator) * query_scale).bfloat16()
        k, v = (torch.randn(batch, tokens, heads, 128, device="cuda", generator=generator).bfloat16() for _ in range(2))
        launch, (q8, k8, vt8, scales) = operand_passes(q, k, v)
        launch()
        torch.cuda.synchronize()
        rq, rk, rvt, rscales = reference_operands(q, k, v)
        codes_equal = all(torch.equal(a, b.view(torch.uint8)) for a, b in ((q8, rq), (k8, rk), (vt8, rvt)))
        scales_equal = torch.equal(scales, rscales)
        expected = attention_reference(q, k, v)
        dequantized = [rq.float() * rscales[0][:, None, :, None], rk.float() * rscales[1][:, None, :, None],
                       (rvt.float()[..., torch.argsort(value_order(padded(tokens))).cuda()][..., :tokens].permute(0, 3, 1, 2)
                        * rscales[2][:, None, :, None])]
        expected_codes = attention_reference(*dequantized)
        o = torch.full_like(q, float("nan"))
        bf16_attention(q, k, v, o)()
        torch.cuda.synchronize()
        bf16_error = float((o.float() - expected).norm() / expected.norm())
        bf16_output = o
        label = f"B={batch} H={heads} S={tokens} q×{query_scale:g}"
        print(f"{label:28} operands: codes {'identical' if codes_equal else 'DIFFER'}, scales {'identical' if scales_equal else 'DIFFER'}; "
              f"bf16 kernel err {bf16_error:.2e}")
        for shift in shifts:
            o = torch.full_like(q, float("nan"))
            fp8_attention(q8, k8, vt8, scales, o, shift, tokens)()
            torch.cuda.synchronize()
            poison = int(torch.isnan(o).sum())
            error = float((o.float() - expected).norm() / expected.norm())
            kernel_error = float((o.float() - expected_codes).norm() / expected_codes.norm())
            ok = codes_equal and scales_equal and poison == 0 and error < 0.1
            print(f"    shift {shift:5.3f}: fp8 err {error:.2e} (vs dequantized codes {kernel_error:.2e}) poison {poison} {'ok' if ok else 'FAIL'}")
            results.append(dict(shape=[batch, heads, tokens], query_scale=query_scale, shift=shift, error=error,
                                kernel_error=kernel_error, bf16_error=bf16_error, poison=poison, codes_equal=codes_equal,
                                scales_equal=scales_equal, ok=ok))
            if shift == app_shift:
                fp8_output = o
        for name, fp8_variant, bf16_variant, _ in kernels[1:]:
            o = torch.full_like(q, float("nan"))
            fp8_attention(q8, k8, vt8, scales, o, app_shift, tokens, fp8_variant)()
            o16 = torch.full_like(q, float("nan"))
            bf16_attention(q, k, v, o16, bf16_variant)()
            torch.cuda.synchronize()
            poison = int(torch.isnan(o).sum()) + int(torch.isnan(o16).sum())
            error = float((o.float() - expected).norm() / expected.norm())
            kernel_error = float((o.float() - expected_codes).norm() / expected_codes.norm())
            variant_bf16_error = float((o16.float() - expected).norm() / expected.norm())
            same_bits = torch.equal(o16.view(torch.int16), bf16_output.view(torch.int16))
            differ = o.view(torch.int16) != fp8_output.view(torch.int16)
            ok = codes_equal and scales_equal and poison == 0 and error < 0.1
            check = dict(variant=name.strip(), shape=[batch, heads, tokens], query_scale=query_scale, shift=app_shift,
                         error=error, kernel_error=kernel_error, bf16_error=variant_bf16_error, bf16_same_bits=same_bits,
                         fp8_differing=int(differ.sum()), poison=poison)
            split_note = ""
            if fp8_variant[1]["split"]:
                # Outside the split units (the last round's) the split launch must give the checked-out kernel's
                # bits, and without its workspace (no split) every bit.
                check["fp8_differing_outside_split"] = int((differ & ~split_rows(batch, tokens, heads, multiprocessors)[..., None]).sum())
                unsplit = torch.full_like(q, float("nan"))
                fp8_attention(q8, k8, vt8, scales, unsplit, app_shift, tokens, fp8_variant, split=False)()
                torch.cuda.synchronize()
                check["unsplit_same_bits"] = torch.equal(unsplit.view(torch.int16), fp8_output.view(torch.int16))
                ok = ok and check["fp8_differing_outside_split"] == 0 and check["unsplit_same_bits"]
                split_note = (f" ({check['fp8_differing_outside_split']} outside the split units; unsplit: "
                              f"{'same bits' if check['unsplit_same_bits'] else 'other bits'})")
            print(f"    variant{name} shift {app_shift:g}: fp8 err {error:.2e} (vs dequantized codes {kernel_error:.2e}), "
                  f"{check['fp8_differing']} of {o.numel()} outputs differ from the checked-out kernel's{split_note}; "
                  f"bf16 err {variant_bf16_error:.2e}, {'same bits' if same_bits else 'other bits'}; poison {poison} "
                  f"{'ok' if ok else 'FAIL'}")
            results.append(dict(check, ok=ok))

    from torch.nn.attention import SDPBackend, sdpa_kernel
    print(f"\n== speed (median round of {args.rounds}, each the median of {args.repeats} x mean of 10 launches), TFLOP/s = 4*S*S*D*H / time")
    timing = []
    for tokens, heads in (tuple(int(n) for n in shape.split("x")) for shape in args.timing_shapes.split(",")):
        q, k, v = (torch.randn(1, tokens, heads, 128, device="cuda", generator=generator).bfloat16() for _ in range(3))
        o = torch.empty_like(q)
        launch, (q8, k8, vt8, scales) = operand_passes(q, k, v)
        launch()
        fp8 = fp8_attention(q8, k8, vt8, scales, o, app_shift, tokens)
        qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
        sdpa = lambda: torch.nn.functional.scaled_dot_product_attention(qt, kt, vt)

        def fp8_with_operands():
            launch()
            fp8()
        functions = {"fp8": (fp8, None), "fp8+operands": (fp8_with_operands, None), "operands": (launch, None),
                     "bf16 wgmma": (bf16_attention(q, k, v, o), None), "cudnn bf16": (sdpa, SDPBackend.CUDNN_ATTENTION)}
        for name, fp8_variant, bf16_variant, _ in kernels[1:]:
            functions["fp8" + name] = (fp8_attention(q8, k8, vt8, scales, o, app_shift, tokens, fp8_variant), None)
            if fp8_variant[1]["split"]:
                functions[f"fp8{name} unsplit"] = (fp8_attention(q8, k8, vt8, scales, o, app_shift, tokens, fp8_variant, split=False), None)
                if args.diagnose_split:
                    functions[f"fp8{name} no memset/merge"] = (
                        fp8_attention(q8, k8, vt8, scales, o, app_shift, tokens, fp8_variant, zero=False), None)
            functions["bf16 wgmma" + name] = (bf16_attention(q, k, v, o, bf16_variant), None)
        rounds = {kind: [] for kind in functions}
        kinds = list(functions)
        for round_index in range(args.rounds):
            # Each round starts one kernel later, so every kernel takes every place in turn. (Identical launches still
            # differed by up to 5 % with the kernel timed before them: compare kernels over several calls or orders;
            # docs/hopper-attention.md, "Splitting the last round".)
            start = round_index % len(kinds)
            for kind in kinds[start:] + kinds[:start]:
                function, backend = functions[kind]
                if backend is None:
                    rounds[kind].append(base.median_ms(function, args.repeats))
                else:
                    with sdpa_kernel(backend):
                        rounds[kind].append(base.median_ms(function, args.repeats))
        flops = 4 * tokens * tokens * 128 * heads
        tflops = lambda ms: flops / ms / 1e9
        print(f"S={tokens} H={heads}: " + ", ".join(
            f"{kind} {statistics.median(times):.3f} ms = {tflops(statistics.median(times)):.0f} TFLOP/s "
            f"({tflops(max(times)):.0f}-{tflops(min(times)):.0f})" for kind, times in rounds.items()))
        timing.append(dict(sequence=tokens, heads=heads, rounds=rounds))
    base.finish(args.json, results, timing)


if __name__ == "__main__":
    main()
