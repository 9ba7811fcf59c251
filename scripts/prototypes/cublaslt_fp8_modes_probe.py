"""Which float8 configurations cuBLASLt accepts on this GPU, how exact and how fast they are.

A research probe for the fast W4A4 path (docs/hopper.md): the engine's FP8 GEMM is cuBLASLt with e4m3 operands,
outer-vector fp32 scales (per token, per channel) and a bf16 output. Removing the activation pass of a layer means
its producer writes the layer's float8 input itself, so this probe asks cuBLASLt, at FLUX's shapes (M = 4608):

- e5m2 activations (no scale: its range needs none) against the e4m3 weights, outer-vector scales, bf16 output;
- a float8 (e5m2 / e4m3) output with the GELU + bias epilogue (fc1 writing fc2's input);
- 1D × 2D block scaling (activations per token and 128 columns, weights per 128 × 128 block);
- the same problems on cuBLAS BF16 (torch.mm) in the same process.

Each configuration: status of the heuristic; the fastest of its first 8 proposals (CUDA events around 30 launches,
median of 5); the error against a float64 product of the same float8 operands (outputs poisoned with NaN first).
Run on the GPU machine: python3 scripts/prototypes/cublaslt_fp8_modes_probe.py
"""
import ctypes
import glob
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from attention_bench import median_ms  # noqa: E402

E4M3, E5M2, BF16, F32 = 28, 29, 14, 0
COMPUTE_32F = 68
DESC = dict(TRANSA=3, TRANSB=4, EPILOGUE=7, BIAS_POINTER=8, A_SCALE=17, B_SCALE=18, D_SCALE=20, FAST_ACCUM=25,
            BIAS_DATA_TYPE=26, A_SCALE_MODE=31, B_SCALE_MODE=32)
SCALAR, OUTER_VEC, VEC128, BLK128 = 0, 3, 4, 5
EPILOGUE_DEFAULT, EPILOGUE_BIAS, EPILOGUE_GELU, EPILOGUE_GELU_BIAS = 1, 4, 32, 36
TORCH_TYPE = {E4M3: torch.float8_e4m3fn, E5M2: torch.float8_e5m2, BF16: torch.bfloat16}


def load_cublaslt():
    roots = [os.path.dirname(torch.__file__) + "/../nvidia/cu13/lib", os.path.dirname(torch.__file__) + "/../nvidia/cublas/lib",
             "/usr/local/cuda/lib64"]
    for root in roots:
        for path in sorted(glob.glob(root + "/libcublasLt.so*")):
            return ctypes.CDLL(path), path
    sys.exit("libcublasLt not found")


lt, lt_path = load_cublaslt()
handle = ctypes.c_void_p()
assert lt.cublasLtCreate(ctypes.byref(handle)) == 0
workspace_bytes = 32 << 20
workspace = torch.empty(workspace_bytes, dtype=torch.uint8, device="cuda")


def set_attr(desc, name, value, ctype):
    v = ctype(value)
    status = lt.cublasLtMatmulDescSetAttribute(desc, DESC[name], ctypes.byref(v), ctypes.sizeof(v))
    if status:
        raise RuntimeError(f"set {name}: status {status}")


def layout(dtype, rows, cols, ld):
    out = ctypes.c_void_p()
    assert lt.cublasLtMatrixLayoutCreate(ctypes.byref(out), dtype, ctypes.c_uint64(rows), ctypes.c_uint64(cols), ctypes.c_int64(ld)) == 0
    return out


class Problem:
    """y[M, N] = x[M, K]·w[N, K]ᵀ with the engine's operand convention (A = w transposed, B = x, D = yᵀ col-major)."""

    def __init__(self, m, n, k, x_type, w_type, out_type, x_mode, w_mode, gelu_bias=False, fast=True, epilogue=None,
                 c_type=BF16, d_scale=True):
        self.m, self.n, self.k = m, n, k
        self.epilogue = epilogue if epilogue is not None else (EPILOGUE_GELU_BIAS if gelu_bias else EPILOGUE_DEFAULT)
        self.c_type = c_type
        self.x_type, self.w_type, self.out_type = x_type, w_type, out_type
        self.x_mode, self.w_mode, self.gelu_bias, self.fast = x_mode, w_mode, gelu_bias, fast
        g = torch.Generator(device="cuda").manual_seed(m * 7 + n * 3 + k + x_type + out_type + x_mode * 11)
        x = torch.randn(m, k, device="cuda", generator=g)
        x[:, ::97] *= 20  # outlier channels
        w = torch.randn(n, k, device="cuda", generator=g) * 0.05
        self.x8 = (x if x_type == E5M2 else x / x.abs().amax(1, keepdim=True) * 448).to(TORCH_TYPE[x_type])
        self.w8 = (w / w.abs().amax(1, keepdim=True) * 448).to(TORCH_TYPE[w_type])
        self.x_scale = self.scales(x_mode, m, k, x.abs().amax(1) / 448 if x_type == E4M3 else torch.ones(m, device="cuda"))
        self.w_scale = self.scales(w_mode, n, k, w.abs().amax(1) / 448)
        self.bias = torch.randn(n, device="cuda", generator=g).to(torch.bfloat16) if self.epilogue in (EPILOGUE_BIAS, EPILOGUE_GELU_BIAS) else None
        self.d_scale = torch.ones(1, device="cuda") if out_type != BF16 and d_scale else None
        self.out = torch.empty(m, n, device="cuda", dtype=TORCH_TYPE[out_type])

    @staticmethod
    def scales(mode, rows, k, per_row):
        """fp32 scales in `mode`'s shape (block modes: all ones, so the layout cannot matter to the check)."""
        if mode == OUTER_VEC:
            return per_row.float().contiguous()
        if mode == SCALAR:
            return per_row.float().max().reshape(1).contiguous()
        blocks_k = (k + 127) // 128
        count = blocks_k * rows if mode == VEC128 else blocks_k * ((rows + 127) // 128)
        return torch.ones(count, device="cuda")

    def reference(self):
        def per_row(scale, mode, rows):
            if mode == OUTER_VEC:
                return scale.double()
            if mode == SCALAR:
                return scale.double().expand(rows)
            return torch.ones(rows, device="cuda", dtype=torch.float64)
        y = self.x8.double() @ self.w8.double().t()
        y *= per_row(self.x_scale, self.x_mode, self.m)[:, None] * per_row(self.w_scale, self.w_mode, self.n)[None, :]
        if self.bias is not None:
            y = y + self.bias.double()
        if self.epilogue in (EPILOGUE_GELU, EPILOGUE_GELU_BIAS):
            y = torch.nn.functional.gelu(y, approximate="tanh")
        return y

    def build(self):
        desc = ctypes.c_void_p()
        assert lt.cublasLtMatmulDescCreate(ctypes.byref(desc), COMPUTE_32F, F32) == 0
        set_attr(desc, "TRANSA", 1, ctypes.c_int32)
        set_attr(desc, "TRANSB", 0, ctypes.c_int32)
        set_attr(desc, "EPILOGUE", self.epilogue, ctypes.c_int32)
        set_attr(desc, "A_SCALE_MODE", self.w_mode, ctypes.c_int32)
        set_attr(desc, "B_SCALE_MODE", self.x_mode, ctypes.c_int32)
        set_attr(desc, "FAST_ACCUM", 1 if self.fast else 0, ctypes.c_int8)
        set_attr(desc, "A_SCALE", self.w_scale.data_ptr(), ctypes.c_uint64)
        set_attr(desc, "B_SCALE", self.x_scale.data_ptr(), ctypes.c_uint64)
        if self.bias is not None:
            set_attr(desc, "BIAS_POINTER", self.bias.data_ptr(), ctypes.c_uint64)
            set_attr(desc, "BIAS_DATA_TYPE", BF16, ctypes.c_int32)
        if self.d_scale is not None:
            set_attr(desc, "D_SCALE", self.d_scale.data_ptr(), ctypes.c_uint64)
        self.desc = desc
        self.a = layout(self.w_type, self.k, self.n, self.k)
        self.b = layout(self.x_type, self.k, self.m, self.k)
        self.c = layout(self.c_type, self.n, self.m, self.n)
        self.d = layout(self.out_type, self.n, self.m, self.n)
        pref = ctypes.c_void_p()
        assert lt.cublasLtMatmulPreferenceCreate(ctypes.byref(pref)) == 0
        limit = ctypes.c_uint64(workspace_bytes)
        assert lt.cublasLtMatmulPreferenceSetAttribute(pref, 1, ctypes.byref(limit), 8) == 0
        self.results = (ctypes.c_uint8 * (96 * 8))()
        found = ctypes.c_int(0)
        status = lt.cublasLtMatmulAlgoGetHeuristic(handle, desc, self.a, self.b, self.c, self.d, pref, 8, self.results,
                                                   ctypes.byref(found))
        usable = [i for i in range(found.value) if int.from_bytes(bytes(self.results[i * 96 + 72:i * 96 + 76]), "little") == 0]
        return status, usable

    def launch(self, algo_index):
        alpha, beta = ctypes.c_float(1), ctypes.c_float(0)
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        algo = ctypes.byref(self.results, algo_index * 96)
        return lt.cublasLtMatmul(handle, self.desc, ctypes.byref(alpha), ctypes.c_void_p(self.w8.data_ptr()), self.a,
                                 ctypes.c_void_p(self.x8.data_ptr()), self.b, ctypes.byref(beta),
                                 ctypes.c_void_p(self.out.data_ptr()), self.c, ctypes.c_void_p(self.out.data_ptr()), self.d,
                                 algo, ctypes.c_void_p(workspace.data_ptr()), ctypes.c_size_t(workspace_bytes), stream)


def time_us(fn, launches=30, repeats=5):
    """Microseconds per launch: attention_bench.median_ms over `repeats` batches of `launches`."""
    return median_ms(fn, repeats, batch=launches) * 1000


NAMES = {E4M3: "e4m3", E5M2: "e5m2", BF16: "bf16"}
MODES = {SCALAR: "scalar", OUTER_VEC: "outer", VEC128: "vec128", BLK128: "blk128x128"}


def run(m, n, k, x_type, w_type, out_type, x_mode, w_mode, gelu_bias=False, fast=True, **options):
    label = (f"M={m} N={n} K={k} x {NAMES[x_type]} {MODES[x_mode]}, w {NAMES[w_type]} {MODES[w_mode]} → {NAMES[out_type]}"
             f"{' GELU+bias' if gelu_bias else ''}{' fast' if fast else ' promoted'}{' ' + str(options) if options else ''}")
    p = Problem(m, n, k, x_type, w_type, out_type, x_mode, w_mode, gelu_bias, fast, **options)
    try:
        status, usable = p.build()
    except RuntimeError as error:
        print(f"refused  {label}: {error}")
        return None
    if status or not usable:
        print(f"refused  {label}: heuristic status {status}, {len(usable)} usable")
        return None
    best = None
    for index in usable:
        p.out.view(torch.uint8).fill_(0x7F if out_type != BF16 else 0xFF)  # NaN in every float8 / bf16 layout used
        status = p.launch(index)
        if status:
            continue
        microseconds = time_us(lambda: p.launch(index))
        if best is None or microseconds < best[0]:
            best = (microseconds, index)
    if best is None:
        print(f"failed   {label}: every algorithm returned an error")
        return None
    p.out.view(torch.uint8).fill_(0x7F if out_type != BF16 else 0xFF)
    p.launch(best[1])
    torch.cuda.synchronize()
    reference = p.reference()
    got = p.out.double()
    error = ((got - reference).abs().max() / reference.abs().max()).item()
    nans = torch.isnan(got).sum().item()
    print(f"ok       {label}: {best[0]:8.1f} µs, error {error:.2e}, NaN {nans}")
    return best[0]


def bf16_us(m, n, k):
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    return time_us(lambda: torch.mm(x, w.t(), out=out))


def output_probe():
    """Which float8-output configurations the heuristic accepts (M = 4608, N = 12288, K = 3072)."""
    m, n, k = 4608, 12288, 3072
    for out_type in (E4M3, E5M2):
        for x_mode in (SCALAR, OUTER_VEC):
            for epilogue in (EPILOGUE_DEFAULT, EPILOGUE_BIAS, EPILOGUE_GELU, EPILOGUE_GELU_BIAS):
                for c_type in (BF16, out_type):
                    for d_scale in (True, False):
                        run(m, n, k, E4M3, E4M3, out_type, x_mode, x_mode, False, True, epilogue=epilogue, c_type=c_type,
                            d_scale=d_scale)


def main():
    print(f"{torch.cuda.get_device_name()}, cuBLASLt {lt_path}, torch {torch.__version__}")
    if "--output-probe" in sys.argv:
        output_probe()
        return
    m = 4608
    for n, k in [(3072, 3072), (3072, 12288), (12288, 3072)]:
        base = bf16_us(m, n, k)
        print(f"--- M={m} N={n} K={k}: cuBLAS BF16 {base:.1f} µs")
        fast = k <= 4096
        cases = [
            (E4M3, E4M3, BF16, OUTER_VEC, OUTER_VEC, False),
            (E5M2, E4M3, BF16, OUTER_VEC, OUTER_VEC, False),
            (E5M2, E4M3, BF16, SCALAR, SCALAR, False),
            (E5M2, E4M3, BF16, SCALAR, OUTER_VEC, False),
            (E4M3, E4M3, BF16, VEC128, BLK128, False),
            (E4M3, E4M3, BF16, VEC128, VEC128, False),
            (E4M3, E4M3, E5M2, OUTER_VEC, OUTER_VEC, True),
            (E4M3, E4M3, E4M3, OUTER_VEC, OUTER_VEC, True),
            (E4M3, E4M3, E5M2, SCALAR, SCALAR, True),
            (E5M2, E4M3, E5M2, OUTER_VEC, OUTER_VEC, True),
        ]
        for x_type, w_type, out_type, x_mode, w_mode, gelu_bias in cases:
            us = run(m, n, k, x_type, w_type, out_type, x_mode, w_mode, gelu_bias, fast)
            if us:
                print(f"         {base / us:.2f}× BF16")


if __name__ == "__main__":
    main()
