@testable import CUDABackend
import Testing

/// The fast W4A4 quantize kernel's block choice (measured on an H200, docs/hopper.md): small blocks for many short
/// rows, 256 threads for few rows or long ones, never fewer threads than the rank, at most 1024.
@Suite struct W4A4FastLaunchTests {
    @Test func quantizeBlockFollowsRowsLengthAndRank() {
        #expect(CUDASVDQW4A4FastLinear.quantizeThreads(rows: 4608, inFeatures: 3072, rank: 32) == 64)
        #expect(CUDASVDQW4A4FastLinear.quantizeThreads(rows: 4608, inFeatures: 4096, rank: 32) == 64)
        #expect(CUDASVDQW4A4FastLinear.quantizeThreads(rows: 4608, inFeatures: 4160, rank: 32) == 128)
        #expect(CUDASVDQW4A4FastLinear.quantizeThreads(rows: 4608, inFeatures: 12288, rank: 32) == 256)
        #expect(CUDASVDQW4A4FastLinear.quantizeThreads(rows: 4608, inFeatures: 15360, rank: 32) == 256)
        #expect(CUDASVDQW4A4FastLinear.quantizeThreads(rows: 4608, inFeatures: 3072, rank: 128) == 128)
        #expect(CUDASVDQW4A4FastLinear.quantizeThreads(rows: 333, inFeatures: 3072, rank: 32) == 256)
        #expect(CUDASVDQW4A4FastLinear.quantizeThreads(rows: 4608, inFeatures: 1 << 20, rank: 32) == 1024)
    }
}
