@testable import CUDABackend
import NunchakuCore
import SVDQuant
import Testing

/// The AWQ GEMV's kernel choice and geometry (AWQGEMVLaunch): one, two or blocks of four rows; fewer rows per block
/// where x would not fit the default shared memory; every kernel it names is one awq_gemv.cu defines.
@Suite struct AWQGEMVLaunchTests {
    static let channelsPerBlock = 8 * AWQGEMVLaunch.channelsPerWarp

    @Test func rowsPickTheKernelAndGridY() {
        let one = AWQGEMVLaunch(rows: 1, outFeatures: 18432, inFeatures: 3072, type: .bf16)
        #expect(one.kernelName == "awq_gemv_rows1_bf16")
        #expect(one.grid == CUDADim3(18432 / Self.channelsPerBlock, 1))
        #expect(one.block == CUDADim3(256))
        #expect(one.sharedMemoryBytes == 3 * 2048)

        let two = AWQGEMVLaunch(rows: 2, outFeatures: 1004, inFeatures: 1088, type: .f16)
        #expect(two.kernelName == "awq_gemv_rows2_f16")
        #expect(two.grid == CUDADim3((1004 + Self.channelsPerBlock - 1) / Self.channelsPerBlock, 1))
        #expect(two.sharedMemoryBytes == 2 * 2 * 2048)

        let three = AWQGEMVLaunch(rows: 3, outFeatures: 9216, inFeatures: 3072, type: .bf16)
        #expect(three.kernelName == "awq_gemv_rows4_bf16" && three.grid.y == 1 && three.sharedMemoryBytes == 4 * 3 * 2048)

        let many = AWQGEMVLaunch(rows: 77, outFeatures: 18432, inFeatures: 3072, type: .bf16)
        #expect(many.kernelName == "awq_gemv_rows4_bf16")
        #expect(many.grid == CUDADim3(18432 / Self.channelsPerBlock, 20))
    }

    @Test func longRowsTakeFewerRowsPerBlock() {
        // 4 rows of K = 12288 would stage 96 KiB of x: 2 rows (48 KiB) per block instead.
        let long = AWQGEMVLaunch(rows: 4, outFeatures: 3072, inFeatures: 12288, type: .bf16)
        #expect(long.kernelName == "awq_gemv_rows2_bf16" && long.grid.y == 2 && long.sharedMemoryBytes == 48 * 1024)
        // One row of K = 32768 needs 64 KiB: above the default limit, which the layer raises before launching.
        let longest = AWQGEMVLaunch(rows: 3, outFeatures: 64, inFeatures: 32768, type: .f16)
        #expect(longest.kernelName == "awq_gemv_rows1_f16" && longest.grid.y == 3)
        #expect(longest.sharedMemoryBytes == 64 * 1024 && longest.sharedMemoryBytes > AWQGEMVLaunch.sharedMemoryLimit)
    }

    @Test func everyChosenKernelIsRegistered() {
        for rows in [1, 2, 3, 4, 5, 77] {
            for type in [ActivationDType.bf16, .f16] {
                let name = AWQGEMVLaunch(rows: rows, outFeatures: 9216, inFeatures: 3072, type: type).kernelName
                #expect(KernelRegistry.source(defining: name)?.name == "awq_gemv.cu", "\(name)")
            }
        }
    }
}
