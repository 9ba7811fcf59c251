// awq_gemv.cu: the AWQ W4A16 linear of the adaLN modulation layers (research/nunchaku-internals.md §1.3, §3.9),
// following the CPU reference (SVDQuant/Linear/AWQW4A16Linear.swift): each weight dequantized in the 16-bit type as
// hfma(code, scale, zero), each product hmul(w, x) rounded to the 16-bit type, the products summed in fp32 (here
// per lane in two sums, then a warp reduction: a different order than the CPU's), the sum rounded, then
// hadd(y, bias).
//
// The work is streaming the codes (N·K/2 bytes) once per block of ROWS rows of x (the FLUX modulation has one row:
// its batch's temb). Each warp owns C output channels at a time (a task) and walks their K in steps of 1024 codes
// (a lane's 16-byte run of 32 codes per channel), loading the next step's C runs, scales and zeros (during a task's
// last step: the next task's first) before it computes the current one; when a task ends, the warp reduces and
// stores its C·ROWS outputs and moves on by the grid's warp count. x is staged once per block in shared memory, each
// 16-byte vector holding the 8 values one code word needs in the order its nibbles come out: (x0,x4), (x1,x5),
// (x2,x6), (x3,x7). A nibble pair becomes exact 16-bit values without integer-to-float conversions:
// (word >> 4s) & 0x000F000F or'ed into the bits of 2^m (bf16 128, f16 1024; their unit step is 1) is the pair
// 2^m + n, and subtracting 2^m is exact.
//
// Layouts (Layouts/AWQDeviceLayout.swift): x [M, K]; codes u8 [N, K/2], unsigned, low nibble = even k (the canonical
// layout); scales and zeros transposed to [N, K/64]; bias [N] or null. Output: `chunks` = 0 writes [M, N] in natural
// channel order; `chunks` = S > 0 writes [S, M, N/S] (chunk s of the modulation is then one contiguous [M, N/S]
// tensor: the interleaved output split of Nunchaku's adaLN layers, done by the store).
// Grid: x = ceil(N / (8·C)) (or fewer: blocks stride over the channel groups), y = ceil(M / ROWS); block: 8 warps;
// dynamic shared memory: ROWS · ceil(K / 1024) · 2048 bytes (Operations/AWQGEMVLaunch.swift). C divides 4, so N
// (a multiple of 4) holds whole channel groups; K is a multiple of 64, so a lane's run lies inside K or past it.
#include "w4a4_half.cuh"

#define AWQ_WARPS 8

/// Stores output (`row`, `channel`): the fp32 sum rounded to T, then hadd(y, bias); [M, N] when `chunks` = 0, else
/// [S, M, N/S].
template <class T>
NK_DEVICE void awq_store(float sum, const u16* __restrict__ bias, u16* __restrict__ out, int channel, int row, int rows,
                         int n, int chunks) {
    u16 y = T::from_float(sum);
    if (bias != nullptr) y = nk_low16(nk_add2<T>(y, bias[channel]));
    i64 index;
    if (chunks > 0) {
        const int width = n / chunks;
        index = ((i64)(channel / width) * rows + row) * width + channel % width;
    } else {
        index = (i64)row * n + channel;
    }
    out[index] = y;
}

/// 16 bytes of codes, read once: kept out of L1, with a 256-byte L2 prefetch.
NK_DEVICE uint4 awq_code_load(const u8* __restrict__ p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

/// Stages rows row0 … row0 + rows_here − 1 of x in shared memory: vector (r, step, j, lane) = the pairs
/// (x[k0+8j+s], x[k0+8j+s+4]), s = 0…3, k0 = step·1024 + lane·32. Every thread of the block takes part.
NK_DEVICE void awq_stage_x(uint4* __restrict__ staged, const u16* __restrict__ x, int row0, int rows_here, int k,
                           int steps) {
    const int vectors = k / 8;
    for (int index = threadIdx.x; index < rows_here * vectors; index += blockDim.x) {
        const int r = index / vectors, q = index % vectors;
        const uint4 v = *reinterpret_cast<const uint4*>(x + (i64)(row0 + r) * k + q * 8);
        const int slot = ((r * steps + (q >> 7)) * 4 + (q & 3)) * 32 + ((q >> 2) & 31);
        staged[slot] = make_uint4(__byte_perm(v.x, v.z, 0x5410), __byte_perm(v.x, v.z, 0x7632),
                                  __byte_perm(v.y, v.w, 0x5410), __byte_perm(v.y, v.w, 0x7632));
    }
}

/// sum[c][r] += this lane's 32 products of channel c's run with row r of x, each hmul(hfma(code, scale, zero), x)
/// rounded to T, added in fp32 (even and odd k in two sums).
template <class T, int ROWS, int C>
NK_DEVICE void awq_accumulate(const uint4 (&run)[C], const u32 (&scale)[C], const u32 (&zero)[C],
                              const uint4* __restrict__ staged, int step, int steps, int lane, int rows_here,
                              float (&sum)[C][ROWS][2]) {
    const u32 magic = T::is_bf16 ? 0x43004300u : 0x64006400u, minus_magic = magic | 0x80008000u;
    u32 xs[ROWS][16];
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        if (r < rows_here) {
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const uint4 v = staged[((r * steps + step) * 4 + j) * 32 + lane];
                xs[r][4 * j] = v.x;
                xs[r][4 * j + 1] = v.y;
                xs[r][4 * j + 2] = v.z;
                xs[r][4 * j + 3] = v.w;
            }
        }
    }
#pragma unroll
    for (int c = 0; c < C; c++) {
        const u32 words[4] = {run[c].x, run[c].y, run[c].z, run[c].w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
#pragma unroll
            for (int s = 0; s < 4; s++) {
                const u32 level = T::fma2(((words[j] >> (4 * s)) & 0x000F000Fu) | magic, T::one2, minus_magic);
                const u32 w = T::fma2(level, scale[c], zero[c]);
#pragma unroll
                for (int r = 0; r < ROWS; r++) {
                    if (r < rows_here) {
                        const float2 product = T::unpack(nk_mul2<T>(w, xs[r][4 * j + s]));
                        sum[c][r][0] += product.x;
                        sum[c][r][1] += product.y;
                    }
                }
            }
        }
    }
}

/// Ends a task: reduces each sum over the warp, stores output (row0 + r, task·C + c) from lane c·ROWS + r, and
/// clears the sums.
template <class T, int ROWS, int C>
NK_DEVICE void awq_finish_task(float (&sum)[C][ROWS][2], int lane, int task, int row0, int rows_here,
                               const u16* __restrict__ bias, u16* __restrict__ out, int rows, int n, int chunks) {
    float mine = 0.0f;
#pragma unroll
    for (int c = 0; c < C; c++) {
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            float total = sum[c][r][0] + sum[c][r][1];
#pragma unroll
            for (int offset = 16; offset > 0; offset >>= 1) total += __shfl_xor_sync(0xFFFFFFFFu, total, offset);
            if (lane == c * ROWS + r) mine = total;
            sum[c][r][0] = sum[c][r][1] = 0.0f;
        }
    }
    const int channel = task * C + lane / ROWS, r = lane % ROWS;
    if (lane < C * ROWS && r < rows_here) awq_store<T>(mine, bias, out, channel, row0 + r, rows, n, chunks);
}

template <class T, int ROWS, int C>
NK_DEVICE void awq_gemv(const u16* __restrict__ x, const u8* __restrict__ codes, const u16* __restrict__ scales,
                        const u16* __restrict__ zeros, const u16* __restrict__ bias, u16* __restrict__ out, int rows,
                        int n, int k, int chunks) {
    static_assert(4 % C == 0 && C * ROWS <= 32, "C divides 4; one lane stores each of a warp's C·ROWS outputs");
    extern __shared__ uint4 awq_staged_x[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int row0 = blockIdx.y * ROWS, rows_here = min(ROWS, rows - row0);
    const int steps = (k + 1023) / 1024, tasks = n / C, task_stride = gridDim.x * AWQ_WARPS;
    const int half_k = k / 2, groups = k / 64;
    int task = blockIdx.x * AWQ_WARPS + warp;

    // This lane's pointers into the current task's first channel: its run of codes, its group's scale and zero.
    const u8* run_pointer = codes + (i64)task * C * half_k + lane * 16;
    const u16* scale_pointer = scales + (i64)task * C * groups + lane / 2;
    const u16* zero_pointer = zeros + (i64)task * C * groups + lane / 2;
    const i64 run_stride = (i64)task_stride * C * half_k, group_stride = (i64)task_stride * C * groups;
    uint4 next_run[C];
    u32 next_scale[C], next_zero[C];
    // Loads step `step` of the task at the given pointers into next_*: zeros where this lane's run lies past K.
    auto load = [&](const u8* runs, const u16* task_scales, const u16* task_zeros, int step) {
        const bool inside = step * 1024 + lane * 32 < k;
#pragma unroll
        for (int c = 0; c < C; c++) {
            if (inside) {
                next_run[c] = awq_code_load(runs + step * 512 + c * half_k);
                next_scale[c] = nk_dup16(task_scales[step * 16 + c * groups]);
                next_zero[c] = nk_dup16(task_zeros[step * 16 + c * groups]);
            } else {
                next_run[c] = make_uint4(0, 0, 0, 0);
                next_scale[c] = next_zero[c] = 0;
            }
        }
    };
    if (task < tasks) load(run_pointer, scale_pointer, zero_pointer, 0);
    awq_stage_x(awq_staged_x, x, row0, rows_here, k, steps);
    __syncthreads();

    float sum[C][ROWS][2] = {};
    while (task < tasks) {
        const int next_task = task + task_stride;
        for (int step = 0; step < steps; step++) {
            uint4 run[C];
            u32 scale[C], zero[C];
#pragma unroll
            for (int c = 0; c < C; c++) {
                run[c] = next_run[c];
                scale[c] = next_scale[c];
                zero[c] = next_zero[c];
            }
            // The next step, or the next task's first step, is in flight while this one is computed.
            if (step + 1 < steps)
                load(run_pointer, scale_pointer, zero_pointer, step + 1);
            else if (next_task < tasks)
                load(run_pointer + run_stride, scale_pointer + group_stride, zero_pointer + group_stride, 0);
            if (step * 1024 + lane * 32 < k)
                awq_accumulate<T, ROWS, C>(run, scale, zero, awq_staged_x, step, steps, lane, rows_here, sum);
        }
        awq_finish_task<T, ROWS, C>(sum, lane, task, row0, rows_here, bias, out, rows, n, chunks);
        task = next_task;
        run_pointer += run_stride;
        scale_pointer += group_stride;
        zero_pointer += group_stride;
    }
}

#define AWQ_GEMV_ARGS                                                                                                \
    const u16* __restrict__ x, const u8* __restrict__ codes, const u16* __restrict__ scales, const u16* __restrict__ zeros, \
        const u16* __restrict__ bias, u16* __restrict__ out, int rows, int n, int k, int chunks
#define AWQ_GEMV_PASS x, codes, scales, zeros, bias, out, rows, n, k, chunks

// By rows per block, 2 channels per warp (Operations/AWQGEMVLaunch.swift; measured on an H200: docs/hopper.md).
// One row: at most 64 registers, so 4 blocks (32 warps) fit an SM.
NK_KERNEL void __launch_bounds__(256, 4) awq_gemv_rows1_bf16(AWQ_GEMV_ARGS) {
    awq_gemv<NKBFloat16, 1, 2>(AWQ_GEMV_PASS);
}
NK_KERNEL void __launch_bounds__(256, 4) awq_gemv_rows1_f16(AWQ_GEMV_ARGS) {
    awq_gemv<NKFloat16, 1, 2>(AWQ_GEMV_PASS);
}
NK_KERNEL void awq_gemv_rows2_bf16(AWQ_GEMV_ARGS) { awq_gemv<NKBFloat16, 2, 2>(AWQ_GEMV_PASS); }
NK_KERNEL void awq_gemv_rows2_f16(AWQ_GEMV_ARGS) { awq_gemv<NKFloat16, 2, 2>(AWQ_GEMV_PASS); }
NK_KERNEL void awq_gemv_rows4_bf16(AWQ_GEMV_ARGS) { awq_gemv<NKBFloat16, 4, 2>(AWQ_GEMV_PASS); }
NK_KERNEL void awq_gemv_rows4_f16(AWQ_GEMV_ARGS) { awq_gemv<NKFloat16, 4, 2>(AWQ_GEMV_PASS); }
