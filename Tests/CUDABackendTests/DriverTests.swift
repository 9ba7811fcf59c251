@testable import CUDABackend
import Testing

@Suite struct DriverTests {
    @Test func missingDriverIsOneClearLine() {
        do {
            _ = try CUDADriver(libraryNames: ["/nonexistent/libcuda.so.1"])
            Issue.record("a missing driver must not load")
        } catch let error as CUDAError {
            guard case .driverUnavailable = error else {
                Issue.record("unexpected \(error)")
                return
            }
            let text = "\(error)"
            #expect(text.hasPrefix("CUDA unavailable: no NVIDIA driver: could not load /nonexistent/libcuda.so.1 ("))
            #expect(text.contains("/nonexistent/libcuda.so.1"))
            #expect(!text.contains("\n"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func libraryWithoutDriverSymbolsIsRefused() {
        do {
            _ = try CUDADriver(libraryNames: ["libm.so.6"])
            Issue.record("libm is not a CUDA driver")
        } catch let CUDAError.driverUnavailable(reason) {
            #expect(reason.contains("cuInit"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func errorMessagesNameWhatFailed() {
        #expect("\(CUDAError.invalidDevice(index: 7, count: 1, visibleDevices: nil))"
            == "GPU index 7 does not exist: 1 device is visible (indices 0..<1)")
        #expect("\(CUDAError.invalidDevice(index: 2, count: 2, visibleDevices: "0,1"))"
            == "GPU index 2 does not exist: 2 devices are visible (indices 0..<2) (CUDA_VISIBLE_DEVICES=0,1)")
        #expect("\(CUDAError.noDevice(visibleDevices: ""))".contains("CUDA_VISIBLE_DEVICES="))
        #expect("\(CUDAError.driverCall(call: "cuMemAllocAsync(64 bytes)", code: 2, name: "CUDA_ERROR_OUT_OF_MEMORY", message: "out of memory"))"
            == "cuMemAllocAsync(64 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory")
        #expect("\(CUDAError.outOfMemory(requestedBytes: 3 << 30, freeBytes: 1 << 30, totalBytes: 80 << 30, liveBytes: 512))"
            == "out of GPU memory: asked for 3.0 GiB, 1.0 GiB free of 80.0 GiB; this process holds 512 B in live buffers")
    }

    @Test func versionsDecodeTheDriverEncoding() {
        #expect(CUDAVersion(driverEncoded: 13000).description == "13.0")
        #expect(CUDAVersion(driverEncoded: 12090).description == "12.9")
        #expect(CUDAVersion(major: 12, minor: 9) < CUDAVersion(major: 13, minor: 0))
    }

    @Test func systemReportExplainsWhatIsMissing() {
        let report = CUDASystemReport.gather(cache: KernelCache(disabledBecause: "test"))
        #expect(report.driver.available == (report.driver.error == nil))
        if !report.driver.available {
            #expect(report.devices.isEmpty)
            #expect(report.driver.error?.hasPrefix("CUDA unavailable") == true)
        }
        #expect(report.nvrtc.available == NVRTCAvailability.usable)
        #expect(report.nvrtc.available == (report.nvrtc.error == nil))
        #expect(!report.kernelCache.enabled)
        #expect(report.kernelCache.disabledReason == "test")
    }
}

/// The driver values of `CUDAStreamPriority` (numerically, greater priorities are smaller).
@Suite struct StreamPriorityTests {
    /// On a device with several levels (sm_90: least 0, greatest −5), normal sits one level above low.
    @Test func levelsOfARange() {
        #expect(CUDAStreamPriority.low.level(least: 0, greatest: -5) == 0)
        #expect(CUDAStreamPriority.normal.level(least: 0, greatest: -5) == -1)
        #expect(CUDAStreamPriority.high.level(least: 0, greatest: -5) == -5)
    }

    /// With a single level every priority is that level.
    @Test func singleLevel() {
        for priority in CUDAStreamPriority.allCases { #expect(priority.level(least: 0, greatest: 0) == 0) }
    }
}
