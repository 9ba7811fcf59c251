// A stand-in for the weight expansion in scripts/prototypes/cublaslt_pdl_probe.py: a grid that may release its
// dependents at its start, waits `spin_ns` (the expansion's latency), then copies `src` to `dst` (the e4m3 weights
// the GEMM after it reads). Not used by the engine.

__device__ __forceinline__ unsigned long long global_time_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// release_at_start: 1 executes griddepcontrol.launch_dependents first, so a programmatic dependent may be launched
// as soon as every block has started; 0 leaves the release to the grid's completion.
extern "C" __global__ void pdl_producer(const uint4* __restrict__ src, uint4* __restrict__ dst, long long count,
                                        long long spin_ns, int release_at_start) {
    if (release_at_start) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    const unsigned long long start = global_time_ns();
    while (global_time_ns() - start < (unsigned long long)spin_ns) {
    }
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

// The dependent's view: when its block 0 started and when griddepcontrol.wait returned (globaltimer, ns).
extern "C" __global__ void pdl_stamp(unsigned long long* out) {
    const unsigned long long started = global_time_ns();
    asm volatile("griddepcontrol.wait;" ::: "memory");
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        out[0] = started;
        out[1] = global_time_ns();
    }
}
