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
kernel at the app's P shift (errors as above), its bf16 kernel (error, and whether its output has the same bits as
the checked-out kernel's), both timed in the same interleaved rounds. The sources compile in parallel. A copy may change
the fp8 key tile (`fp8_geometry`).

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
    experiment (docs/hopper-attention.md)."""
    text = open(os.path.join(folder, "attention_wgmma.cu")).read()
    declared = re.search(r"constexpr int kFP8KeysPerTile = (\d+);", text)
    stages = int(re.search(r"constexpr int k(?:FP8)?Stages = (\d+);", text).group(1))
    keys = int(declared.group(1)) if declared else 128
    return dict(keys=keys, shared=128 * 128 + 2 * stages * keys * 128 + (2 + 4 * stages) * 8 + 1024,
                value_box=64 if declared else 128, value_swizzle=2 if declared else 3)


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

    def fp8_attention(q8, k8, vt8, scales, o, shift, keys, kernel=None):
        function, geometry = kernel or fp8_kernel
        batch, queries, heads, d = o.shape
        spad = vt8.shape[-1]
        maps = [tiled_map(attention, x, 0, (d, heads, x.shape[1], batch), (d, heads * d, x.shape[1] * heads * d), (128, 1, rows, 1))
                for x, rows in ((q8, 128), (k8, geometry["keys"]))]
        maps.append(tiled_map(attention, vt8, 0, (spad, d, heads, batch), (spad, d * spad, heads * d * spad),
                              (geometry["value_box"], 128, 1, 1), geometry["value_swizzle"]))
        units = (queries + 127) // 128 * heads * batch
        arguments = [("m", m) for m in maps] + [("p", o.data_ptr()), ("p", 0), ("i", queries), ("i", keys), ("i", heads),
                                                ("i", batch), ("f", scale_log2), ("p", scales.data_ptr()), ("f", shift)]
        return lambda: attention.launch(function, (min(units, multiprocessors), 1, 1), (384, 1, 1), geometry["shared"], stream,
                                        arguments)

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
    cases = [(1, 24, 4608, 1.0), (1, 24, 1536, 1.0), (2, 3, 333, 1.0), (1, 2, 1, 1.0), (2, 5, 700, 1.0), (1, 24, 4608, 4.0),
             (1, 4, 1000, 4.0)]
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
            ok = codes_equal and scales_equal and poison == 0 and error < 0.1
            print(f"    variant{name} shift {app_shift:g}: fp8 err {error:.2e} (vs dequantized codes {kernel_error:.2e}); "
                  f"bf16 err {variant_bf16_error:.2e}, {'same bits' if same_bits else 'other bits'}; poison {poison} "
                  f"{'ok' if ok else 'FAIL'}")
            results.append(dict(variant=name.strip(), shape=[batch, heads, tokens], query_scale=query_scale, shift=app_shift,
                                error=error, kernel_error=kernel_error, bf16_error=variant_bf16_error,
                                bf16_same_bits=same_bits, poison=poison, ok=ok))

    from torch.nn.attention import SDPBackend, sdpa_kernel
    print(f"\n== speed (median round of {args.rounds}, each the median of {args.repeats} x mean of 10 launches), TFLOP/s = 4*S*S*D*H / time")
    timing = []
    for tokens in [4608, 1536]:
        q, k, v = (torch.randn(1, tokens, 24, 128, device="cuda", generator=generator).bfloat16() for _ in range(3))
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
            functions["bf16 wgmma" + name] = (bf16_attention(q, k, v, o, bf16_variant), None)
        rounds = {kind: [] for kind in functions}
        for _ in range(args.rounds):
            for kind, (function, backend) in functions.items():
                if backend is None:
                    rounds[kind].append(base.median_ms(function, args.repeats))
                else:
                    with sdpa_kernel(backend):
                        rounds[kind].append(base.median_ms(function, args.repeats))
        flops = 4 * tokens * tokens * 128 * 24
        tflops = lambda ms: flops / ms / 1e9
        print(f"S={tokens}: " + ", ".join(
            f"{kind} {statistics.median(times):.3f} ms = {tflops(statistics.median(times)):.0f} TFLOP/s "
            f"({tflops(max(times)):.0f}-{tflops(min(times)):.0f})" for kind, times in rounds.items()))
        timing.append(dict(sequence=tokens, rounds=rounds))
    base.finish(args.json, results, timing)


if __name__ == "__main__":
    main()
