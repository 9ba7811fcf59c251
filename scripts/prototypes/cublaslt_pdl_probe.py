"""Can cuBLASLt's FP8 GEMM start before the kernel that writes its weights has finished? (docs/hopper.md, session 17)

The fast W4A4 path runs the weight expansion, then cuBLASLt's e4m3 GEMM on the expanded weights. Between the two the
GPU drains the expansion and then launches the GEMM (about 1.3 µs at 3072²). A programmatic dependency would let the
GEMM's blocks start while the expansion's last blocks run — correct only if cuBLASLt's kernel executes
`griddepcontrol.wait` before it reads its operands. cuBLASLt takes no launch attributes, so this probe builds the
dependency from outside:

- "event": the producer is launched with a programmatic event (`CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_EVENT`), a second
  stream waits for that event and runs the GEMM (eager; what the engine could do per layer);
- "graph event": the "event" sequence captured as a CUDA graph;
- "graph": the plain sequence captured as a CUDA graph (no programmatic dependency: the launch gaps alone).

The producer (`pdl_producer.cu`) stands in for the expansion: it releases its dependents at its start (or not),
waits, then copies the e4m3 weights into the GEMM's weight buffer, which is poisoned with NaN before each checked
iteration. A GEMM that does not wait reads the poison or the other iteration's weights, so every variant's output is
compared with the plain sequence's (the same kernel, so it must be identical). Then every variant is timed in
alternating rounds, and `pdl_stamp` shows whether the GEMM releases the kernel after it early.
Run on the GPU machine: python3 scripts/prototypes/cublaslt_pdl_probe.py [--spin-ns 1000]
"""
import argparse
import ctypes
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import cublaslt_fp8_modes_probe as probe  # noqa: E402
from attention_bench import compile_source, load_nvrtc, Module  # noqa: E402

torch = probe.torch
cuda = ctypes.CDLL("libcuda.so.1")
SHAPES = [(3072, 3072), (9216, 3072), (12288, 3072), (3072, 12288), (21504, 3072), (3072, 15360)]
PRODUCER_BLOCKS, PRODUCER_THREADS = 768, 128
ATTRIBUTE_STREAM_SERIALIZATION, ATTRIBUTE_PROGRAMMATIC_EVENT = 6, 7


def check(status, what):
    if status != 0:
        raise RuntimeError(f"{what} failed with CUresult {status}")


class LaunchAttribute(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("value", ctypes.c_uint8 * 64)]


class LaunchConfig(ctypes.Structure):
    _fields_ = [("grid", ctypes.c_uint32 * 3), ("block", ctypes.c_uint32 * 3), ("shared", ctypes.c_uint32),
                ("stream", ctypes.c_void_p), ("attributes", ctypes.POINTER(LaunchAttribute)), ("count", ctypes.c_uint32)]


def launch_ex(function, grid, block, stream, arguments, attributes=()):
    """cuLaunchKernelEx with `attributes` [(id, bytes)]; arguments as ctypes values."""
    array = (LaunchAttribute * max(1, len(attributes)))()
    for slot, (identifier, payload) in zip(array, attributes):
        slot.id = identifier
        ctypes.memmove(slot.value, payload, len(payload))
    config = LaunchConfig((grid, 1, 1), (block, 1, 1), 0, ctypes.c_void_p(stream), array, len(attributes))
    pointers = (ctypes.c_void_p * len(arguments))(*[ctypes.cast(ctypes.byref(a), ctypes.c_void_p) for a in arguments])
    check(cuda.cuLaunchKernelEx(ctypes.byref(config), function, pointers, None), "cuLaunchKernelEx")


def programmatic_event_attribute(event, at_block_start=False):
    payload = ctypes.c_uint64(event.value).value.to_bytes(8, "little") + (0).to_bytes(4, "little")
    return ATTRIBUTE_PROGRAMMATIC_EVENT, payload + int(at_block_start).to_bytes(4, "little")


def new_event():
    event = ctypes.c_void_p()
    check(cuda.cuEventCreate(ctypes.byref(event), 2), "cuEventCreate")  # CU_EVENT_DISABLE_TIMING
    return event


class Setup:
    """One FLUX shape: the GEMM (cuBLASLt e4m3, outer-vector scales, bias, bf16 out), two weight sources, the
    producer, two streams and the events between them."""

    def __init__(self, module, producer, n, k, spin_ns):
        self.problem = probe.Problem(4608, n, k, probe.E4M3, probe.E4M3, probe.BF16, probe.OUTER_VEC, probe.OUTER_VEC,
                                     epilogue=probe.EPILOGUE_BIAS)
        status, usable = self.problem.build()
        if status or not usable:
            raise RuntimeError(f"cuBLASLt refuses ({n}, {k})")
        self.algo = usable[0]
        weights = self.problem.w8.view(torch.uint8)
        self.sources = [weights.clone(), weights ^ 0x80]  # the second: every weight negated
        self.producer, self.module, self.spin_ns = producer, module, spin_ns
        self.main, self.side = torch.cuda.Stream(), torch.cuda.Stream()
        self.released, self.done = new_event(), new_event()
        self.outputs = [torch.empty_like(self.problem.out) for _ in range(2)]

    def gemm(self, stream, output):
        p, alpha, beta = self.problem, ctypes.c_float(1), ctypes.c_float(0)
        status = probe.lt.cublasLtMatmul(
            probe.handle, p.desc, ctypes.byref(alpha), ctypes.c_void_p(p.w8.data_ptr()), p.a,
            ctypes.c_void_p(p.x8.data_ptr()), p.b, ctypes.byref(beta), ctypes.c_void_p(output.data_ptr()), p.c,
            ctypes.c_void_p(output.data_ptr()), p.d, ctypes.byref(p.results, self.algo * 96),
            ctypes.c_void_p(probe.workspace.data_ptr()), ctypes.c_size_t(probe.workspace_bytes), ctypes.c_void_p(stream))
        if status:
            raise RuntimeError(f"cublasLtMatmul: status {status}")

    def produce(self, stream, source, release_at_start, attributes=()):
        args = [ctypes.c_uint64(self.sources[source].data_ptr()), ctypes.c_uint64(self.problem.w8.data_ptr()),
                ctypes.c_int64(self.problem.w8.numel() // 16), ctypes.c_int64(self.spin_ns),
                ctypes.c_int32(int(release_at_start))]
        launch_ex(self.producer, PRODUCER_BLOCKS, PRODUCER_THREADS, stream, args, attributes)

    # One iteration of each eager variant, on self.main (the side stream rejoins it).
    def serial(self, source, output):
        s = self.main.cuda_stream
        self.produce(s, source, False)
        self.gemm(s, output)

    def event(self, source, output, release_at_start=True):
        s, side = self.main.cuda_stream, self.side.cuda_stream
        self.produce(s, source, release_at_start, [programmatic_event_attribute(self.released)])
        check(cuda.cuStreamWaitEvent(ctypes.c_void_p(side), self.released, 0), "cuStreamWaitEvent")
        self.gemm(side, output)
        check(cuda.cuEventRecord(self.done, ctypes.c_void_p(side)), "cuEventRecord")
        check(cuda.cuStreamWaitEvent(ctypes.c_void_p(s), self.done, 0), "cuStreamWaitEvent")

    def graph(self, iteration, count):
        """An executable graph of `count` iterations of `iteration(source, output)` captured on self.main."""
        s = ctypes.c_void_p(self.main.cuda_stream)
        graph = ctypes.c_void_p()
        check(cuda.cuStreamBeginCapture_v2(s, 2), "cuStreamBeginCapture")  # relaxed: cuBLASLt may query the device
        try:
            for i in range(count):
                iteration(i % 2, self.outputs[i % 2])
        finally:
            check(cuda.cuStreamEndCapture(s, ctypes.byref(graph)), "cuStreamEndCapture")
        executable = ctypes.c_void_p()
        check(cuda.cuGraphInstantiateWithFlags(ctypes.byref(executable), graph, ctypes.c_uint64(0)), "cuGraphInstantiate")
        return executable


def launch_graph(executable, stream):
    check(cuda.cuGraphLaunch(executable, ctypes.c_void_p(stream.cuda_stream)), "cuGraphLaunch")


def checked(setup, name, run, writes_both=False):
    """Runs 6 poisoned iterations of `run(source, output)` and compares the output (both outputs, for a graph of two
    iterations) with the plain sequence's."""
    references = []
    for source in range(2):
        with torch.cuda.stream(setup.main):
            setup.serial(source, setup.outputs[source])
        torch.cuda.synchronize()
        references.append(setup.outputs[source].clone())
    wrong = 0
    for i in range(6):
        source = i % 2
        with torch.cuda.stream(setup.main):
            setup.problem.w8.view(torch.uint8).fill_(0x7F)
            for output in setup.outputs:
                output.view(torch.int16).fill_(-1)
            run(source, setup.outputs[source])
        torch.cuda.synchronize()
        compared = [0, 1] if writes_both else [source]
        if not all(torch.equal(setup.outputs[j], references[j]) for j in compared):
            wrong += 1
    print(f"  {name:<28} {'identical to the plain sequence' if wrong == 0 else f'WRONG in {wrong} of 6 iterations'}")
    return wrong == 0


def time_us(setup, run, batch=20, repeats=5):
    """Microseconds per iteration: median over `repeats` of `batch` iterations between events on the main stream."""
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(setup.main)
        run()
        end.record(setup.main)
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000 / batch)
    return statistics.median(times)


def stamp_gap_us(setup, stamp):
    """After the GEMM: how long a programmatically launched kernel waited in griddepcontrol.wait (µs)."""
    out = torch.zeros(2, dtype=torch.int64, device="cuda")
    s = setup.main.cuda_stream
    with torch.cuda.stream(setup.main):
        setup.gemm(s, setup.outputs[0])
        attribute = (ATTRIBUTE_STREAM_SERIALIZATION, (1).to_bytes(4, "little"))
        launch_ex(stamp, 132, 128, s, [ctypes.c_uint64(out.data_ptr())], [attribute])
    torch.cuda.synchronize()
    return (out[1] - out[0]).item() / 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spin-ns", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    cubin, _ = compile_source(load_nvrtc(), "pdl_producer.cu", folder=HERE)
    module = Module(cubin)
    producer, stamp = module.function("pdl_producer", 0), module.function("pdl_stamp", 0)
    print(f"{torch.cuda.get_device_name()}, {probe.lt_path}, producer spin {options.spin_ns} ns")
    for n, k in SHAPES:
        setup = Setup(module, producer, n, k, options.spin_ns)
        print(f"({n}, {k})")
        batch = 20
        graphs = {}
        variants = {
            "plain": lambda: [setup.serial(i % 2, setup.outputs[i % 2]) for i in range(batch)],
            "event, release at start": lambda: [setup.event(i % 2, setup.outputs[i % 2]) for i in range(batch)],
            "event, release at end": lambda: [setup.event(i % 2, setup.outputs[i % 2], False) for i in range(batch)],
        }
        correct = {
            "event, release at start": checked(setup, "event, release at start", setup.event),
            "event, release at end": checked(setup, "event, release at end",
                                             lambda source, output: setup.event(source, output, False)),
        }
        graphs["graph"] = setup.graph(setup.serial, batch)
        try:
            graphs["graph event"] = setup.graph(setup.event, batch)
            one_event = setup.graph(setup.event, 2)
            correct["graph event"] = checked(setup, "graph event", lambda source, output: launch_graph(one_event, setup.main),
                                           True)
        except RuntimeError as error:
            print(f"  graph event: {error}")
        for name, executable in graphs.items():
            variants[name] = (lambda e: lambda: launch_graph(e, setup.main))(executable)
        with torch.cuda.stream(setup.main):
            for run in variants.values():
                run()
        torch.cuda.synchronize()
        table = {name: [] for name in variants}
        for _ in range(options.rounds):
            for name, run in variants.items():
                with torch.cuda.stream(setup.main):
                    table[name].append(time_us(setup, run, batch))
        base = statistics.median(table["plain"])
        for name, times in table.items():
            flag = "" if correct.get(name, True) else "  (wrong results)"
            print(f"  {name:<28} {statistics.median(times):7.1f} µs per producer + GEMM "
                  f"({min(times):.1f}–{max(times):.1f}), {base - statistics.median(times):+.1f} µs{flag}")
        gaps = [stamp_gap_us(setup, stamp) for _ in range(5)]
        print(f"  after the GEMM, a programmatic dependent waited {statistics.median(gaps):.1f} µs in griddepcontrol.wait "
              f"(median of 5; near 0: the GEMM releases it only at its end)")


if __name__ == "__main__":
    main()
