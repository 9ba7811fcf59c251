@testable import CUDABackend
import Testing

/// `CUDALaunchConfiguration` against cuda.h's 64-bit layout of `CUlaunchConfig` and `CUlaunchAttribute`.
@Suite struct LaunchConfigurationTests {
    @Test func dependentLaunchConfigurationHasCudaHsLayout() throws {
        let stream = OpaquePointer(bitPattern: 0x1234_5678_9ABC)
        let configuration = CUDALaunchConfiguration(grid: CUDADim3(16, 48, 2), block: CUDADim3(128, 3, 1), sharedMemoryBytes: 17_408,
                                                    stream: stream)
        configuration.withDependentLaunchConfiguration { bytes in
            let words = (0..<7).map { bytes.load(fromByteOffset: 4 * $0, as: UInt32.self) }
            #expect(words == [16, 48, 2, 128, 3, 1, 17_408])
            #expect(bytes.load(fromByteOffset: 32, as: UInt.self) == 0x1234_5678_9ABC)
            #expect(bytes.load(fromByteOffset: 48, as: UInt32.self) == 1)
            let attribute = UnsafeRawPointer(bitPattern: bytes.load(fromByteOffset: 40, as: UInt.self))
            #expect(attribute?.load(as: UInt32.self) == 6)   // CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
            #expect(attribute?.load(fromByteOffset: 8, as: Int32.self) == 1)
            #expect(attribute.map { raw in (12..<CUDALaunchConfiguration.attributeBytes).allSatisfy { raw.load(fromByteOffset: $0, as: UInt8.self) == 0 } } == true)
        }
    }
}
