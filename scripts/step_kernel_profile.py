#!/usr/bin/env python3
"""Where a `nunchaku bench step` goes, kernel by kernel: runs the command under Nsight Compute with one metric
(gpu__time_duration.sum) at the GPU's own clocks and without cache flushes (`--clock-control none
--cache-control none`), then prints the GPU time per step of each kernel and of each group (cuBLASLt FP8 GEMMs,
other cuBLASLt kernels, each of ours), and their sum. ncu runs the kernels one at a time, so streams do not overlap
and the sum is what the GPU does per step, to compare with the step's wall time (docs/hopper.md, "Session 12").

The per-step figure divides each kernel's total by the steps the command runs: `bench step --steps S` runs one
warm-up step and S timed ones, so pass `--steps-run S+1`. Launches outside the steps (cuBLASLt's algorithm timing on
a shape's first call, the embedders) are counted too; they are small next to a 1024² step.

Caveat: ncu's per-kernel summary has one row per kernel name, block size and number of blocks, and prints one of the
grid shapes it merged (fc1's 12 × 96 and fc2's 48 × 24 expansions are one row: both 1152 blocks).

On the GPU machine (ncu at /usr/local/cuda/bin/ncu):
  python3 scripts/step_kernel_profile.py --steps-run 2 [--csv OUT.csv] [--json OUT.json] -- /tmp/nunchaku bench step \
      --modes fast --attention fp8 --tokens-image 4096 --steps 1"""
import argparse, csv, io, json, os, subprocess, sys


def parse_summary(text):
    """Rows of ncu's `--print-summary per-kernel --csv` output: (kernel name, blocks, invocations, mean ns)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"Process ID"')), None)
    if start is None:
        raise ValueError("no per-kernel summary in ncu's output (did the command launch any kernel?)")
    rows = []
    for record in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        if record.get("Metric Name") != "gpu__time_duration.sum":
            continue
        rows.append((record["Kernel Name"], record["Grid Size"], int(record["Invocations"]),
                     float(record["Average"].replace(",", ""))))
    return rows


def group(name):
    """cuBLASLt's FP8 GEMMs (nvjet kernels with e4m3 operands, "qq"), its other kernels, or our kernel by name."""
    if name.startswith("nvjet") and "_qq" in name:
        return "cuBLASLt FP8 GEMMs"
    if name.startswith("nvjet") or "cublas" in name.lower():
        return "cuBLASLt, other (BF16 GEMMs, split-K reduction)"
    return name.split("(")[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps-run", type=int, required=True, help="steps the command runs (warm-up included)")
    parser.add_argument("--ncu", default="/usr/local/cuda/bin/ncu")
    parser.add_argument("--csv", help="keep ncu's raw CSV here")
    parser.add_argument("--json", help="write the per-group table here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the nunchaku command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.steps_run < 1:
        parser.error("give --steps-run ≥ 1 and the command after --")
    ncu = [args.ncu, "--clock-control", "none", "--cache-control", "none", "--metrics", "gpu__time_duration.sum",
           "--print-summary", "per-kernel", "--csv"]
    result = subprocess.run(ncu + command, capture_output=True, text=True)
    if args.csv:
        with open(args.csv, "w") as f:
            f.write(result.stdout)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SystemExit(f"ncu exited with {result.returncode}")
    rows = parse_summary(result.stdout)
    groups, kernels = {}, []
    for name, grid, calls, mean_ns in rows:
        per_step_ms = calls * mean_ns / 1e6 / args.steps_run
        kernels.append((per_step_ms, name[:90], grid, calls, mean_ns / 1e3))
        groups[group(name)] = groups.get(group(name), 0.0) + per_step_ms
    print(f"GPU time per step (ms), {args.steps_run} steps run:")
    for name, ms in sorted(groups.items(), key=lambda item: -item[1]):
        print(f"{ms:8.2f}  {name}")
    print(f"{sum(groups.values()):8.2f}  sum")
    print("\nlargest kernels (ms per step, launches, mean µs):")
    for ms, name, grid, calls, mean_us in sorted(kernels, reverse=True)[:15]:
        print(f"{ms:8.2f}  {calls:5d} × {mean_us:7.1f} µs  {name} {grid}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps_run": args.steps_run, "groups_ms_per_step": groups, "sum_ms_per_step": sum(groups.values())}, f, indent=1)


if __name__ == "__main__":
    main()
