#!/usr/bin/env python3
"""Checks and times the attention kernels (attention_wgmma.cu, attention_fa2.cu) straight from their sources.

Compiles each kernel file with NVRTC (ctypes, the same options as the Swift KernelCompiler plus `-Xptxas -v` for the
register report), launches the kernels through the driver API on PyTorch tensors (the wgmma kernel's tensor maps made
by cuTensorMapEncodeTiled exactly as CUDATensorMap.swift makes them), compares every output with a
float32 PyTorch reference on fresh random inputs (outputs poisoned with NaN first) and times them with CUDA events
(median of repeats) against torch SDPA (cuDNN and flash backends) in the same process.

    python3 scripts/attention_bench.py --compile-only          # compile for sm_90a, print the ptxas reports
    python3 scripts/attention_bench.py [--repeats 30] [--json FILE]   # on an H100/H200: check, then time
    python3 scripts/attention_bench.py --kernels COPY --quick          # a variant's copy of the kernel folder, bf16 only
    python3 scripts/attention_bench.py --variant A --variant B         # also check and time copies A, B of the folder

Timing alternates the kernels (`--rounds` rounds of each, in turn) so that clock drift during the run affects them
alike; a row reports the median round and the range.
"""
import argparse
import ctypes
import glob
import json
import math
import os
import statistics
import sys

KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "CUDABackend", "Kernels")


def load_nvrtc():
    candidates = [os.environ.get("NUNCHAKU_NVRTC_PATH", "")]
    for pattern in ["/usr/local/cuda/lib64/libnvrtc.so*", "/usr/local/cuda/targets/x86_64-linux/lib/libnvrtc.so*"]:
        candidates += sorted(glob.glob(pattern))
    for path in sys.path:
        candidates += sorted(glob.glob(os.path.join(path, "nvidia", "cu13", "lib", "libnvrtc.so.*")))
    for candidate in candidates:
        if candidate and "builtins" not in candidate and os.path.exists(candidate):
            return ctypes.CDLL(candidate)
    sys.exit("NVRTC not found: set NUNCHAKU_NVRTC_PATH")


def compile_source(nvrtc, name, folder=KERNELS, architecture="sm_90a", includes=()):
    """The cubin of <folder>/<name> and the NVRTC log (ptxas report included); `includes`: more header folders."""
    text = open(os.path.join(folder, name), "rb").read()
    program = ctypes.c_void_p()
    check = lambda status, what: status == 0 or sys.exit(f"{what} failed ({status}) for {name}")
    check(nvrtc.nvrtcCreateProgram(ctypes.byref(program), text, name.encode(), 0, None, None), "nvrtcCreateProgram")
    options = [f"--gpu-architecture={architecture}", "--std=c++17", f"--include-path={folder}", "--ptxas-options=-v"]
    options += [f"--include-path={path}" for path in includes]
    array = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    status = nvrtc.nvrtcCompileProgram(program, len(options), array)
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(program, log)
    if status != 0:
        sys.exit(f"{name} does not compile for {architecture}:\n{log.value.decode()}")
    nvrtc.nvrtcGetCUBINSize(program, ctypes.byref(size))
    cubin = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetCUBIN(program, cubin)
    return cubin.raw, log.value.decode()


class Module:
    """A cubin loaded into the current (PyTorch's primary) context."""

    def __init__(self, cubin):
        self.cuda = ctypes.CDLL("libcuda.so.1")
        self.handle = ctypes.c_void_p()
        self.check(self.cuda.cuModuleLoadData(ctypes.byref(self.handle), cubin), "cuModuleLoadData")

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what} failed with CUresult {status}")

    def function(self, name, shared_bytes):
        function = ctypes.c_void_p()
        self.check(self.cuda.cuModuleGetFunction(ctypes.byref(function), self.handle, name.encode()), name)
        self.check(self.cuda.cuFuncSetAttribute(function, 8, shared_bytes), "cuFuncSetAttribute")  # max dynamic smem
        return function

    def tensor_map(self, tensor):
        """The 128-byte CUtensorMap of a contiguous [B, S, H, D] bf16/f16 tensor as attention_wgmma.cu reads it:
        4-D (innermost first D, H, S, B), box 64 x 1 x 128 x 1, 128-byte swizzle, zero fill outside."""
        import torch
        batch, tokens, heads, d = tensor.shape
        storage = ctypes.create_string_buffer(128 + 64)
        aligned = (ctypes.addressof(storage) + 63) // 64 * 64
        dims = (ctypes.c_uint64 * 4)(d, heads, tokens, batch)
        strides = (ctypes.c_uint64 * 3)(d * 2, heads * d * 2, tokens * heads * d * 2)
        box = (ctypes.c_uint32 * 4)(64, 1, 128, 1)
        steps = (ctypes.c_uint32 * 4)(1, 1, 1, 1)
        data_type = 9 if tensor.dtype == torch.bfloat16 else 6  # CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 / FLOAT16
        self.check(self.cuda.cuTensorMapEncodeTiled(
            ctypes.c_void_p(aligned), ctypes.c_int(data_type), ctypes.c_uint32(4), ctypes.c_void_p(tensor.data_ptr()),
            dims, strides, box, steps, ctypes.c_int(0), ctypes.c_int(3), ctypes.c_int(3), ctypes.c_int(0)),
            "cuTensorMapEncodeTiled")  # no interleave, 128-byte swizzle, 256-byte L2 promotion, zero fill
        return ctypes.string_at(aligned, 128)

    def launch(self, function, grid, block, shared_bytes, stream, arguments):
        values = [ctypes.c_uint64(a) if kind == "p" else ctypes.c_int32(a) if kind == "i" else ctypes.c_float(a)
                  if kind == "f" else (ctypes.c_uint64 * 16).from_buffer_copy(a) for kind, a in arguments]
        pointers = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in values])
        self.check(self.cuda.cuLaunchKernel(function, *grid, *block, shared_bytes, ctypes.c_void_p(stream), pointers, None),
                   "cuLaunchKernel")


# The launch geometry of each kernel family (Operations/Attention*.swift mirrors it).
def wgmma_launch(d):
    plan = 2 * 64 * d * 2 + 3 * 2 * 128 * d * 2 + 14 * 8
    return dict(queries_per_block=128, threads=384, shared=plan + 1024)


def fa2_launch(d):
    return dict(queries_per_block=64, threads=128, shared=4 * 64 * (d + 8) * 2)


def median_ms(function, repeats, batch=10):
    """Median over `repeats` of the mean time of `batch` back-to-back launches (hides the host launch cost)."""
    import torch
    for _ in range(3):
        function()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(batch):
            function()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / batch)
    return statistics.median(times)



def graph_time_us(launch, reps=20):
    """Microseconds per launch of `launch(i, stream)`: 3 warm-up launches, then `reps` launches captured in a CUDA
    graph on a side stream, the median of 7 replays (the harnesses of the W4A4 passes use it)."""
    import torch
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        for i in range(3): launch(i, s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        for i in range(reps): launch(i, s)
    times = []
    for _ in range(7):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); g.replay(); b.record(); torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / reps)
    return statistics.median(times) * 1e3


def finish(json_path, results, timing):
    """Writes the checks and timings as JSON (when asked), prints the pass count and exits 1 if a check failed."""
    import torch
    if json_path:
        json.dump(dict(device=torch.cuda.get_device_name(), checks=results, timing=timing), open(json_path, "w"), indent=1)
    failed = [r for r in results if not r["ok"]]
    print(f"\n{len(results) - len(failed)}/{len(results)} checks pass")
    sys.exit(1 if failed else 0)

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--compile-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json")
    parser.add_argument("--kernels", default=KERNELS, help="folder of the kernel sources (a variant's copy)")
    parser.add_argument("--quick", action="store_true", help="bf16 only: three checks, two timed shapes")
    parser.add_argument("--label", default="", help="printed before the speed table")
    parser.add_argument("--variant", action="append", default=[],
                        help="another folder of kernel sources whose attention_wgmma.cu is checked and timed beside")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per kernel, interleaved")
    args = parser.parse_args()
    nvrtc = load_nvrtc()
    cubins = {}
    sources = [("wgmma", "attention_wgmma.cu", args.kernels), ("fa2", "attention_fa2.cu", args.kernels)]
    sources += [(f"wgmma:{os.path.basename(os.path.normpath(folder))}", "attention_wgmma.cu", folder) for folder in args.variant]
    for kind, name, folder in sources:
        cubins[kind], log = compile_source(nvrtc, name, folder)
        print(f"== {kind}: {folder}/{name}\n" + "\n".join(line for line in log.splitlines() if "registers" in line or "arning" in line or "bytes stack" in line))
    if args.compile_only:
        return

    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    stream = torch.cuda.current_stream().cuda_stream
    modules = {kind: Module(cubin) for kind, cubin in cubins.items()}
    # "wgmma" runs the persistent grid (one block per multiprocessor at most, as the app launches it);
    # "wgmma/units" the same kernel with one block per work unit, for comparison.
    wgmma_kinds = [kind for kind in modules if kind.startswith("wgmma")] + ["wgmma/units"]
    multiprocessors = torch.cuda.get_device_properties(0).multi_processor_count
    dtypes = {"bf16": torch.bfloat16, "f16": torch.float16}

    def run(kind, dtype, d, q, k, v, o, mask):
        wgmma = kind.startswith("wgmma")
        launch = wgmma_launch(d) if wgmma else fa2_launch(d)
        module = modules[kind.removesuffix("/units")]
        name = f"nunchaku_attention_wgmma_{dtype}_d{d}" if wgmma else f"nunchaku_attention_{dtype}_d{d}"
        function = module.function(name, launch["shared"])
        batch, queries, heads, _ = q.shape
        query_blocks = (queries + launch["queries_per_block"] - 1) // launch["queries_per_block"]
        scale = ("f", 1.4426950408889634 / math.sqrt(d))
        common = [("p", o.data_ptr()), ("p", mask.data_ptr() if mask is not None else 0), ("i", queries), ("i", k.shape[1]),
                  ("i", heads)]
        if wgmma:
            units = query_blocks * heads * batch
            grid = (units if kind.endswith("/units") else min(units, multiprocessors), 1, 1)
            arguments = [("m", module.tensor_map(x)) for x in (q, k, v)] + common + [("i", batch), scale]
        else:
            grid = (query_blocks, heads, batch)
            arguments = [("p", x.data_ptr()) for x in (q, k, v)] + common + [scale]
        return lambda: module.launch(function, grid, (launch["threads"], 1, 1), launch["shared"], stream, arguments)

    def reference(q, k, v, mask):
        scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        return torch.einsum("bhqk,bkhd->bqhd", torch.softmax(scores, dim=-1), v.float())

    results = []
    cases = [(1, 24, 4608, 4608, 128, False), (1, 24, 1536, 1536, 128, False), (2, 3, 333, 333, 128, True),
             (1, 2, 1, 1, 128, False), (2, 4, 77, 77, 64, False), (2, 2, 100, 257, 64, True),
             (1, 24, 1024, 1024, 64, False), (1, 5, 700, 129, 128, False), (2, 2, 130, 1000, 128, True)]
    generator = torch.Generator(device="cuda").manual_seed(1234)
    print("\n== correctness (relative L2 error against float32 PyTorch; poison = NaN-filled output elements left)")
    formats = ["bf16"] if args.quick else ["bf16", "f16"]
    for dtype in formats:
        for batch, heads, queries, keys, d, masked in cases[:3] if args.quick else cases:
            q = torch.randn(batch, queries, heads, d, device="cuda", generator=generator).to(dtypes[dtype])
            k = torch.randn(batch, keys, heads, d, device="cuda", generator=generator).to(dtypes[dtype])
            v = torch.randn(batch, keys, heads, d, device="cuda", generator=generator).to(dtypes[dtype])
            mask = None
            if masked:
                mask = torch.ones(batch, keys, dtype=torch.uint8, device="cuda")
                for sample in range(1, batch):
                    mask[sample, max(1, keys * 2 // 5):] = 0
            expected = reference(q, k, v, mask)
            for kind in wgmma_kinds + ["fa2"]:
                o = torch.full_like(q, float("nan"))
                run(kind, dtype, d, q, k, v, o, mask)()
                torch.cuda.synchronize()
                poison = int(torch.isnan(o).sum())
                error = float((o.float() - expected).norm() / expected.norm())
                label = f"{kind:11} {dtype} B={batch} H={heads} Sq={queries} Skv={keys} d={d}{' masked' if masked else ''}"
                ok = poison == 0 and error < (2e-2 if dtype == "bf16" else 5e-3)
                print(f"{label:55} err {error:.2e} poison {poison} {'ok' if ok else 'FAIL'}")
                results.append(dict(kind=kind, dtype=dtype, shape=[batch, heads, queries, keys, d], masked=masked,
                                    error=error, poison=poison, ok=ok))

    from torch.nn.attention import SDPBackend, sdpa_kernel
    print(f"\n== {args.label} speed (median of {args.repeats} x mean of 10 launches, CUDA events), TFLOP/s = 4*S*S*D*H / time")
    timing = []
    for dtype in formats:
        for sequence in [4608, 1536]:
            heads, d = 24, 128
            q, k, v = (torch.randn(1, sequence, heads, d, device="cuda", generator=generator).to(dtypes[dtype]) for _ in range(3))
            o = torch.empty_like(q)
            flops = 4 * sequence * sequence * d * heads
            qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))

            sdpa = lambda: torch.nn.functional.scaled_dot_product_attention(qt, kt, vt)
            # Each timed function with the SDPA backend it runs under (None: our kernels).
            functions = {kind: (run(kind, dtype, d, q, k, v, o, None), None) for kind in wgmma_kinds}
            functions.update(cudnn=(sdpa, SDPBackend.CUDNN_ATTENTION), flash=(sdpa, SDPBackend.FLASH_ATTENTION))
            rounds = {kind: [] for kind in functions}
            for _ in range(args.rounds):
                for kind, (function, backend) in functions.items():
                    if backend is None:
                        rounds[kind].append(median_ms(function, args.repeats))
                    else:
                        with sdpa_kernel(backend):
                            rounds[kind].append(median_ms(function, args.repeats))
            rounds["fa2"] = [median_ms(run("fa2", dtype, d, q, k, v, o, None), args.repeats)]  # far behind: once
            row = dict(dtype=dtype, sequence=sequence, rounds=rounds)
            timing.append(row)
            tflops = lambda ms: flops / ms / 1e9
            print(f"{dtype} S={sequence}: " + ", ".join(
                f"{kind} {statistics.median(times):.3f} ms = {tflops(statistics.median(times)):.0f} TFLOP/s"
                + (f" ({tflops(max(times)):.0f}-{tflops(min(times)):.0f})" if len(times) > 1 else "")
                for kind, times in rounds.items()))
    finish(args.json, results, timing)


if __name__ == "__main__":
    main()
