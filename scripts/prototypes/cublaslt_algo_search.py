"""Does any cuBLASLt FP8 configuration beat the heuristic's proposals at FLUX's shapes?

A research probe for the fast W4A4 path (docs/hopper.md): the engine's FP8 GEMM (e4m3 operands, outer-vector fp32
scales, bf16 output, M = 4608) takes the fastest of the heuristic's first 8 proposals. This probe tries other
configurations: by default the heuristic's proposals with each custom option 0–7 and cluster shape; with
`--exhaustive` every algorithm id cuBLASLt has for the type combination and every configuration its capabilities
allow (tile, stages, cluster shape, CTA swizzling, custom options 0–7). It keeps those `cublasLtMatmulAlgoCheck`
accepts and whose product matches the heuristic's first proposal to 1e-2 of max |y| (outputs poisoned first; a
workspace shared with live tensors once made that fail), times each briefly (CUDA events around 5 launches, median
of 3), adds split-K 2–4 variants of the best three, and re-times those best and the heuristic's proposals round
robin (7 rounds of 20 launches each, median), so that clock drift over the run treats them alike.
Tile ids are cuBLASLt's `cublasLtMatmulTile_t` values (cublasLt.h names them).
Run on the GPU machine: python3 scripts/prototypes/cublaslt_algo_search.py [N,K ...] [--exhaustive]
"""
import ctypes
import itertools
import statistics
import sys

import torch

from cublaslt_fp8_modes_probe import BF16, COMPUTE_32F, E4M3, F32, OUTER_VEC, Problem, handle, lt, time_us, workspace, workspace_bytes

CAP = dict(SPLITK=0, REDUCTION_MASK=1, SWIZZLING=2, TILE_IDS=6, CUSTOM_MAX=7, STAGES_IDS=13)
CONFIG = dict(TILE=(1, ctypes.c_uint32), SPLITK=(2, ctypes.c_int32), REDUCTION=(3, ctypes.c_uint32), SWIZZLING=(4, ctypes.c_uint32),
              CUSTOM=(5, ctypes.c_uint32), STAGES=(6, ctypes.c_uint32), CLUSTER=(8, ctypes.c_uint16))
EXHAUSTIVE = "--exhaustive" in sys.argv
CLUSTERS = {0: "auto", 2: "1x1", 3: "2x1", 4: "4x1", 5: "1x2", 6: "2x2", 8: "1x4"}
REDUCTION_IN_PLACE, REDUCTION_OUTPUT_TYPE = 1, 4
Algo = ctypes.c_uint64 * 8
RESULT_BYTES = 96


def capability(algo, attribute, array=False):
    written = ctypes.c_size_t(0)
    if array:
        lt.cublasLtMatmulAlgoCapGetAttribute(ctypes.byref(algo), attribute, None, 0, ctypes.byref(written))
        values = (ctypes.c_uint32 * max(1, written.value // 4))()
        lt.cublasLtMatmulAlgoCapGetAttribute(ctypes.byref(algo), attribute, values, ctypes.sizeof(values), ctypes.byref(written))
        return list(values[:written.value // 4])
    value = ctypes.c_uint32(0)
    lt.cublasLtMatmulAlgoCapGetAttribute(ctypes.byref(algo), attribute, ctypes.byref(value), 4, ctypes.byref(written))
    return value.value


def configure(algo, **settings):
    for name, value in settings.items():
        attribute, ctype = CONFIG[name]
        v = ctype(value)
        if lt.cublasLtMatmulAlgoConfigSetAttribute(ctypes.byref(algo), attribute, ctypes.byref(v), ctypes.sizeof(v)):
            return False
    return True


def read_config(algo):
    out = {}
    for name in ("TILE", "STAGES", "CLUSTER", "SWIZZLING", "SPLITK", "CUSTOM"):
        attribute, ctype = CONFIG[name]
        v, written = ctype(0), ctypes.c_size_t(0)
        lt.cublasLtMatmulAlgoConfigGetAttribute(ctypes.byref(algo), attribute, ctypes.byref(v), ctypes.sizeof(v), ctypes.byref(written))
        out[name.lower()] = v.value
    algo_id = ctypes.c_int32(0)
    lt.cublasLtMatmulAlgoConfigGetAttribute(ctypes.byref(algo), 0, ctypes.byref(algo_id), 4, ctypes.byref(ctypes.c_size_t(0)))
    out["id"] = algo_id.value
    return out


def accepted(p, algo):
    result = (ctypes.c_uint8 * RESULT_BYTES)()
    status = lt.cublasLtMatmulAlgoCheck(handle, p.desc, p.a, p.b, p.c, p.d, ctypes.byref(algo), result)
    needed = int.from_bytes(bytes(result[64:72]), "little")
    return status == 0 and needed <= workspace_bytes


def launcher(p, algo):
    alpha, beta = ctypes.c_float(1), ctypes.c_float(0)

    def launch():
        return lt.cublasLtMatmul(handle, p.desc, ctypes.byref(alpha), ctypes.c_void_p(p.w8.data_ptr()), p.a, ctypes.c_void_p(p.x8.data_ptr()),
                                 p.b, ctypes.byref(beta), ctypes.c_void_p(p.out.data_ptr()), p.c, ctypes.c_void_p(p.out.data_ptr()), p.d,
                                 ctypes.byref(algo), ctypes.c_void_p(workspace.data_ptr()), ctypes.c_size_t(workspace_bytes),
                                 ctypes.c_void_p(torch.cuda.current_stream().cuda_stream))
    return launch


def output_of(p, algo):
    p.out.view(torch.uint8).fill_(0xFF)
    assert launcher(p, algo)() == 0
    torch.cuda.synchronize()
    return p.out.clone()


def exhaustive(p):
    """Every configuration of every algorithm id that `cublasLtMatmulAlgoCheck` accepts."""
    ids = (ctypes.c_int * 256)()
    count = ctypes.c_int(0)
    assert lt.cublasLtMatmulAlgoGetIds(handle, COMPUTE_32F, F32, E4M3, E4M3, BF16, BF16, 256, ids, ctypes.byref(count)) == 0
    candidates = []
    for algo_id in ids[:count.value]:
        base = Algo()
        if lt.cublasLtMatmulAlgoInit(handle, COMPUTE_32F, F32, E4M3, E4M3, BF16, BF16, algo_id, ctypes.byref(base)):
            continue
        tiles = capability(base, CAP["TILE_IDS"], array=True) or [0]
        stages = capability(base, CAP["STAGES_IDS"], array=True) or [0]
        swizzles = range(capability(base, CAP["SWIZZLING"]) + 1)
        customs = range(min(capability(base, CAP["CUSTOM_MAX"]), 7) + 1)
        for tile, stage, cluster, swizzle, custom in itertools.product(tiles, stages, CLUSTERS, swizzles, customs):
            algo = Algo.from_buffer_copy(bytes(base))
            if configure(algo, TILE=tile, STAGES=stage, CLUSTER=cluster, SWIZZLING=swizzle, CUSTOM=custom) and accepted(p, algo):
                candidates.append(algo)
    return candidates


def neighbourhood(p, heuristic):
    """The heuristic's proposals with each custom option 0–7 and cluster shape, where accepted (no duplicates)."""
    seen, candidates = set(), []
    for proposal in heuristic:
        for custom, cluster in itertools.product(range(8), CLUSTERS):
            algo = Algo.from_buffer_copy(bytes(proposal))
            if configure(algo, CUSTOM=custom, CLUSTER=cluster) and bytes(algo) not in seen and accepted(p, algo):
                seen.add(bytes(algo))
                candidates.append(algo)
    return candidates


def round_robin_us(p, algos, rounds=7, launches=20):
    """Each algorithm's median over `rounds` rounds, every round timing all of them in turn (so clock drift over the
    run affects them alike)."""
    times = [[] for _ in algos]
    for _ in range(rounds):
        for index, algo in enumerate(algos):
            times[index].append(time_us(launcher(p, algo), launches=launches, repeats=1))
    return [statistics.median(t) for t in times]


def search(n, k, fast):
    p = Problem(4608, n, k, E4M3, E4M3, BF16, OUTER_VEC, OUTER_VEC, False, fast)
    status, usable = p.build()
    assert status == 0 and usable, f"heuristic status {status}"
    heuristic = []
    for index in usable:
        algo = Algo.from_buffer_copy(bytes(p.results[index * RESULT_BYTES:index * RESULT_BYTES + 64]))
        heuristic.append(algo)
    candidates = exhaustive(p) if EXHAUSTIVE else neighbourhood(p, heuristic)
    print(f"--- M=4608 N={n} K={k} ({'fast' if fast else 'promoted'} accumulation): {len(candidates)} configurations accepted "
          f"({'every id and capability' if EXHAUSTIVE else 'the heuristic proposals with custom options 0-7 and cluster shapes'})", flush=True)
    reference = output_of(p, heuristic[0]).double()
    scale = reference.abs().max()
    correct = lambda algo: launcher(p, algo)() == 0 and ((output_of(p, algo).double() - reference).abs().max() / scale).item() < 1e-2
    quick, wrong = [], 0
    for algo in candidates:
        if not correct(algo):
            wrong += 1
            continue
        quick.append((time_us(launcher(p, algo), launches=5, repeats=3), algo))
    print(f"{wrong} of them give another product than the heuristic's first proposal (or fail to launch)")
    quick.sort(key=lambda t: t[0])
    best = [algo for _, algo in quick[:8]]
    for algo in best[:3]:   # split-K variants of the best three
        for splits in (2, 3, 4):
            for scheme in (REDUCTION_IN_PLACE, REDUCTION_OUTPUT_TYPE):
                variant = Algo.from_buffer_copy(bytes(algo))
                if configure(variant, SPLITK=splits, REDUCTION=scheme) and accepted(p, variant) and correct(variant):
                    best.append(variant)
    pool = [("search", a) for a in best] + [("heuristic", a) for a in heuristic]
    timed = sorted(((us, source, a) for us, (source, a) in zip(round_robin_us(p, [a for _, a in pool]), pool)), key=lambda t: t[0])
    for us, source, algo in timed[:6]:
        print(f"{us:8.1f} µs  {source:9s} {read_config(algo)}")
    heuristic_best = min(t[0] for t in timed if t[1] == "heuristic")
    winner = timed[0]
    difference = ((output_of(p, winner[2]).double() - reference).abs().max() / scale).item()
    print(f"best {winner[0]:.1f} µs ({winner[1]}) against the heuristic's best {heuristic_best:.1f} µs: "
          f"{heuristic_best / winner[0]:.3f}×; output vs the heuristic's: max difference {difference:.2e} of max |y|", flush=True)


def main():
    shapes = [tuple(map(int, s.split(","))) for s in sys.argv[1:] if not s.startswith("--")] or [(3072, 3072), (3072, 12288), (9216, 3072), (12288, 3072), (21504, 3072)]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    for n, k in shapes:
        search(n, k, fast=k <= 3072)   # the engine's default (mixed) accumulation


if __name__ == "__main__":
    main()
