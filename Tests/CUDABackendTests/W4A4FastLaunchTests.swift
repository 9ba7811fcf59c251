@testable import CUDABackend
import SVDQuant
import Testing

/// The fast W4A4 kernels' launches: the quantize kernel's variant and block per shape class (measured on an H200,
/// docs/hopper.md): the factor-keeping variants for rows up to 3072 values (64 threads from 1024 rows, else 128),
/// `wide` for longer rows of many tokens with the smallest power-of-two block holding the row in registers,
/// `plain` with 256 threads for longer rows of few tokens, at most 1024; the weight expansion's grid and shared
/// memory as w4a4_fp8_weights.cu lays them out.
@Suite struct W4A4FastLaunchTests {
    @Test func quantizeLaunchFollowsRowsAndLength() {
        typealias Launch = CUDASVDQW4A4FastLinear.QuantizeLaunch
        let launch = CUDASVDQW4A4FastLinear.quantizeLaunch
        #expect(launch(4608, 3072) == Launch(variant: "kept6", threads: 64))
        #expect(launch(1024, 1024) == Launch(variant: "kept6", threads: 64))
        #expect(launch(1023, 3072) == Launch(variant: "kept3", threads: 128))
        #expect(launch(1, 3072) == Launch(variant: "kept3", threads: 128))
        #expect(launch(4608, 4096) == Launch(variant: "wide", threads: 64))
        #expect(launch(4608, 4160) == Launch(variant: "wide", threads: 128))
        #expect(launch(4608, 12288) == Launch(variant: "wide", threads: 256))
        #expect(launch(4608, 15360) == Launch(variant: "wide", threads: 256))
        #expect(launch(333, 12288) == Launch(variant: "plain", threads: 256))
        #expect(launch(1, 3200) == Launch(variant: "plain", threads: 256))
        #expect(launch(4608, 1 << 20) == Launch(variant: "wide", threads: 1024))
    }

    /// The FP8 GEMM's accumulation: `mixed` is fast exactly up to FLUX's width-3072 depths, promoted for the
    /// GELU-fed 12288 and 15360; the standard one is fast everywhere.
    @Test func accumulationPolicyFollowsDepth() {
        #expect(FP8Accumulation.standard == .fast)
        for depth in [3072, 3200, 4096] { #expect(FP8Accumulation.mixed.isFast(depth: depth)) }
        for depth in [4224, 12288, 15360] { #expect(!FP8Accumulation.mixed.isFast(depth: depth)) }
        #expect(FP8Accumulation.fast.isFast(depth: 15360) && !FP8Accumulation.promoted.isFast(depth: 128))
    }

    /// The mma.sync kernels: one block of 256 threads per 128 rows × 256 columns (a depth of an odd number of 128s
    /// leaves the last block half idle); shared memory 384 · 2R bytes (R = 32: 24 576; R = 256: 196 608, above the
    /// 48 KiB a launch gets without opting in and under the 227 KiB a block may have). The Hopper kernels (rank 32, INT4
    /// and NVFP4 alike): one warpgroup per 64 rows × 192 columns (a depth that is no multiple of 192 leaves the last
    /// block one or two parts), four 4 KB tiles and 1024 bytes of alignment slack.
    @Test func expansionLaunchCoversTheScratch() {
        let launch = CUDASVDQW4A4FastLinear.expansionLaunch
        let flux = launch(3072, 3072, 32, false)
        #expect(flux.grid == CUDADim3(12, 24) && flux.threads == 256 && flux.sharedBytes == 24_576)
        let ragged = launch(3136, 12416, 256, true)
        #expect(ragged.grid == CUDADim3(49, 25) && ragged.sharedBytes == 196_608)
        #expect(launch(128, 128, 0, true).sharedBytes == 0)
        let hopper = launch(3000, 3072, 32, true)
        #expect(hopper.grid == CUDADim3(16, 47) && hopper.threads == 128 && hopper.sharedBytes == 17_408)
        #expect(launch(3072, 3200, 32, true).grid == CUDADim3(17, 48))   // 16 blocks of 192 columns and one of 128
    }

    /// Rank 32 takes the `_r32` kernels (their wgmma forms on Hopper), every other rank the general ones; each name is
    /// one the registry declares.
    @Test func expansionKernelByRank() throws {
        let kernel = CUDASVDQW4A4FastLinear.expansionKernel
        #expect(kernel(.int4, .bf16, 32, false) == "w4a4_fp8_expand_weights_int4_bf16_r32")
        #expect(kernel(.int4, .bf16, 32, true) == "w4a4_fp8_expand_weights_wgmma_int4_bf16_r32")
        #expect(kernel(.nvfp4, .f16, 48, true) == "w4a4_fp8_expand_weights_nvfp4_f16")
        for precision in [SVDQuantPrecision.int4, .nvfp4] {
            for type in [ActivationDType.bf16, .f16] {
                for rank in [16, 32, 256] {
                    for hopper in [false, true] {
                        let name = kernel(precision, type, rank, hopper)
                        #expect(KernelRegistry.source(defining: name)?.name == "w4a4_fp8_weights.cu", "\(name)")
                    }
                }
            }
        }
    }
}
