@testable import CUDABackend
import Testing

/// The fast W4A4 quantize kernel's variant and block per shape class (measured on an H200, docs/hopper.md): the
/// factor-keeping variants for rows up to 3072 values (64 threads from 1024 rows, else 128), `wide` for longer rows
/// of many tokens with the smallest power-of-two block holding the row in registers, `plain` with 256 threads for
/// longer rows of few tokens; never fewer threads than the rank, at most 1024.
@Suite struct W4A4FastLaunchTests {
    @Test func quantizeLaunchFollowsRowsLengthAndRank() {
        typealias Launch = CUDASVDQW4A4FastLinear.QuantizeLaunch
        let launch = CUDASVDQW4A4FastLinear.quantizeLaunch
        #expect(launch(4608, 3072, 32) == Launch(variant: "kept6", threads: 64))
        #expect(launch(4608, 3072, 64) == Launch(variant: "kept6", threads: 64))
        #expect(launch(1024, 1024, 32) == Launch(variant: "kept6", threads: 64))
        #expect(launch(1023, 3072, 32) == Launch(variant: "kept3", threads: 128))
        #expect(launch(1, 3072, 128) == Launch(variant: "kept3", threads: 128))
        #expect(launch(4608, 3072, 128) == Launch(variant: "wide", threads: 128))
        #expect(launch(333, 3072, 256) == Launch(variant: "plain", threads: 256))
        #expect(launch(4608, 4096, 32) == Launch(variant: "wide", threads: 64))
        #expect(launch(4608, 4160, 32) == Launch(variant: "wide", threads: 128))
        #expect(launch(4608, 12288, 32) == Launch(variant: "wide", threads: 256))
        #expect(launch(4608, 15360, 32) == Launch(variant: "wide", threads: 256))
        #expect(launch(333, 12288, 64) == Launch(variant: "plain", threads: 256))
        #expect(launch(4608, 1 << 20, 32) == Launch(variant: "wide", threads: 1024))
    }

    /// The low-rank down-projection's kernel only where it beat cuBLAS on an H200 (docs/hopper.md): up to 512 rows,
    /// K ≤ 3072, R = 16…128 in steps of 16; 8 rows per block up to R = 64, 16 above; 16 warps; shared memory for
    /// the warps' partial sums (40 floats per row).
    @Test func lowRankDownKernelOnlyWhereItWins() throws {
        let text = try #require(CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: 512, inFeatures: 3072, rank: 32))
        #expect(text.rowsPerBlock == 8 && text.warps == 16 && text.sharedBytes == 16 * 8 * 40 * 4)
        let single = try #require(CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: 1, inFeatures: 3072, rank: 64))
        #expect(single.rowsPerBlock == 8)
        let wide = try #require(CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: 333, inFeatures: 3072, rank: 128))
        #expect(wide.rowsPerBlock == 16 && wide.sharedBytes == 16 * 16 * 40 * 4)
        #expect(CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: 513, inFeatures: 3072, rank: 32) == nil)
        #expect(CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: 4608, inFeatures: 3072, rank: 32) == nil)
        #expect(CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: 512, inFeatures: 12288, rank: 32) == nil)
        #expect(CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: 333, inFeatures: 3072, rank: 256) == nil)
        #expect(CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: 333, inFeatures: 3072, rank: 40) == nil)
        #expect(CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: 333, inFeatures: 3080, rank: 32) == nil)
        #expect(CUDASVDQW4A4FastLinear.lowRankDownLaunch(rows: 0, inFeatures: 3072, rank: 32) == nil)
    }

    /// The FP8 GEMM's accumulation: `mixed` (the default) is fast exactly up to FLUX's width-3072 depths (3072 + R
    /// padded to 128 stays ≤ 4096), promoted for the GELU-fed 12288 and 15360.
    @Test func accumulationPolicyFollowsDepth() {
        for depth in [3200, 3328, 4096] { #expect(FP8Accumulation.mixed.isFast(depth: depth)) }
        for depth in [4224, 12416, 15488] { #expect(!FP8Accumulation.mixed.isFast(depth: depth)) }
        #expect(FP8Accumulation.fast.isFast(depth: 15488) && !FP8Accumulation.promoted.isFast(depth: 128))
    }

    /// The weight expansion's threads each fold two units of 16 columns for INT4 (one 16-byte code load; K is a
    /// multiple of 64, so both units share a group) and one for NVFP4, as w4a4_fp8_weights.cu indexes them.
    @Test func expansionUnitsFollowPrecision() {
        #expect(CUDASVDQW4A4FastLinear.expansionUnitsPerThread(.int4) == 2)
        #expect(CUDASVDQW4A4FastLinear.expansionUnitsPerThread(.nvfp4) == 1)
    }
}
