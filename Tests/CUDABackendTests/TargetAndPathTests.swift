@testable import CUDABackend
import Testing

@Suite struct CUDATargetTests {
    /// NVRTC 13.0's list.
    let nvrtc13 = [75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121]

    @Test(arguments: [(8, 0, "sm_80"), (8, 6, "sm_86"), (8, 9, "sm_89"), (9, 0, "sm_90a"), (10, 0, "sm_100a"), (12, 0, "sm_120a")])
    func knownArchitecturesGetCubins(major: Int, minor: Int, expected: String) throws {
        let target = try CUDATarget.forDevice(ComputeCapability(major: major, minor: minor), supportedArchitectures: nvrtc13)
        #expect(target.description == expected)
        #expect(target.output == .cubin)
        #expect(target.nvrtcOption == "--gpu-architecture=\(expected)")
    }

    @Test func newerGPUThanNVRTCGetsPTXOfTheNewestKnownArchitecture() throws {
        let target = try CUDATarget.forDevice(ComputeCapability(major: 13, minor: 0), supportedArchitectures: nvrtc13)
        #expect(target == CUDATarget(architecture: 121, architectureSpecific: false, output: .ptx))
        #expect(target.description == "compute_121")
    }

    @Test func tooOldGPUsAndTooNewNVRTCsAreRejected() {
        #expect(throws: CUDAError.self) {
            try CUDATarget.forDevice(ComputeCapability(major: 7, minor: 5), supportedArchitectures: nvrtc13)
        }
        do {
            _ = try CUDATarget.forDevice(ComputeCapability(major: 8, minor: 0), supportedArchitectures: [90, 100])
            Issue.record("an NVRTC without sm_80 or older must be refused for an sm_80 GPU")
        } catch let error as CUDAError {
            #expect("\(error)".contains("sm_90…sm_100"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

@Suite struct FourBitCodePathTests {
    @Test func pathsFollowTheArchitecturePlan() {
        func plan(_ format: FourBitFormat, _ major: Int, _ minor: Int) -> FourBitCodePath {
            FourBitCodePath.plan(format, on: ComputeCapability(major: major, minor: minor))
        }
        #expect(plan(.int4, 8, 6).kind == .native)
        #expect(plan(.int4, 8, 9).summary.contains("s4 mma.sync"))
        #expect(plan(.int4, 9, 0).kind == .widened)
        #expect(plan(.int4, 9, 0).summary.contains("int8 tensor cores (exact)"))
        #expect(plan(.int4, 9, 0).summary.contains("fp8"))
        #expect(plan(.nvfp4, 8, 9).kind == .dequantized)
        #expect(plan(.nvfp4, 8, 9).summary.contains("no native FP4"))
        #expect(plan(.nvfp4, 9, 0).kind == .dequantized)
        #expect(plan(.nvfp4, 12, 0).kind == .native)
        #expect(plan(.int4, 12, 0).kind == .widened)
        #expect(plan(.int4, 7, 5).kind == .unsupported)
    }
}
