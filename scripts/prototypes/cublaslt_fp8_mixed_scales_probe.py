"""Would per-tensor weight scaling speed up the fast W4A4 path's FP8 GEMM? (docs/hopper.md, "Session 16")

The engine scales its e4m3 GEMM by outer vectors: x's per-token scale and the weights' per-channel unit. If the
weights' codes were made relative to one per-tensor unit instead, only x would need a vector. This probe asks
cuBLASLt, at FLUX's six shapes (M = 4608, bias epilogue, fast accumulation, bf16 output, the engine's operand order),
for x outer-vector × w scalar next to outer × outer (today) and scalar × scalar (the fastest kind), in alternating
rounds: heuristic status, proposals, the fastest proposal's time (cublaslt_fp8_modes_probe.run) and its error against
a float64 product of the same operands.
Run on the GPU machine: python3 scripts/prototypes/cublaslt_fp8_mixed_scales_probe.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cublaslt_fp8_modes_probe as probe  # noqa: E402

SHAPES = [(3072, 3072), (9216, 3072), (12288, 3072), (3072, 12288), (21504, 3072), (3072, 15360)]
MODES = [("outer x outer", probe.OUTER_VEC, probe.OUTER_VEC), ("x outer, w scalar", probe.OUTER_VEC, probe.SCALAR),
         ("scalar x scalar", probe.SCALAR, probe.SCALAR)]


def main():
    print(f"{probe.torch.cuda.get_device_name()}, cuBLASLt {probe.lt_path}")
    table = {}
    for round_index in range(2):
        for n, k in SHAPES:
            for label, x_mode, w_mode in MODES:
                us = probe.run(4608, n, k, probe.E4M3, probe.E4M3, probe.BF16, x_mode, w_mode, False, True,
                               epilogue=probe.EPILOGUE_BIAS)
                table.setdefault((n, k, label), []).append(us)
    print("\nN, K | " + " | ".join(label for label, _, _ in MODES) + " (µs, two rounds)")
    for n, k in SHAPES:
        cells = []
        for label, _, _ in MODES:
            times = table[(n, k, label)]
            cells.append(", ".join("refused" if t is None else f"{t:.1f}" for t in times))
        print(f"{n}, {k} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
