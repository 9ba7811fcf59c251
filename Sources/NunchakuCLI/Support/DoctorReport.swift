import Nunchaku

/// Everything `nunchaku doctor` finds, printable as text or JSON.
struct DoctorReport: Codable {
    enum Status: String, Codable {
        /// A GPU is present and passed the checks.
        case ok
        /// No usable CUDA driver or GPU: everything runs on the CPU backend. Not a failure.
        case cpuOnly = "cpu-only"
        /// A GPU is present but a check failed (or the requested GPU does not exist).
        case failed
    }

    /// The checks run on one GPU.
    struct GPUCheck: Codable {
        var deviceIndex: Int
        var selfCheck: KernelSelfCheckResult?
        var transfers: [TransferMeasurement]?
        var memory: CUDAMemoryStatistics?
        var freeMemoryBytes: Int?
        var error: String?
    }

    var host: DoctorHostInfo
    var cuda: CUDASystemReport
    var check: GPUCheck?
    var status: Status
    /// One line explaining `status`.
    var summary: String

    /// Gathers the report and, when a GPU is present, runs the checks on GPU `deviceIndex`.
    static func gather(deviceIndex: Int, copyBytes: Int) -> DoctorReport {
        let cuda = CUDASystemReport.gather()
        var report = DoctorReport(host: .gather(), cuda: cuda, check: nil, status: .cpuOnly, summary: "")
        guard cuda.driver.available, cuda.deviceError == nil, !cuda.devices.isEmpty else {
            let reason = cuda.driver.error ?? cuda.deviceError ?? "\(CUDAError.noDevice(visibleDevices: cuda.driver.visibleDevices))"
            report.summary = "\(reason); everything runs on the CPU backend"
            return report
        }
        var check = GPUCheck(deviceIndex: deviceIndex)
        do {
            let context = try CUDAContext(deviceIndex: deviceIndex)
            check.selfCheck = try KernelSelfCheck.run(on: context)
            if copyBytes > 0 { check.transfers = try TransferBenchmark.run(on: context, byteCount: copyBytes) }
            check.memory = try context.memoryPool.statistics()
            check.freeMemoryBytes = try context.memoryInfo().freeBytes
        } catch {
            check.error = "\(error)"
        }
        report.check = check
        if let error = check.error {
            report.status = .failed
            report.summary = "GPU \(deviceIndex): \(error)"
        } else if let selfCheck = check.selfCheck, !selfCheck.passed {
            report.status = .failed
            report.summary = "GPU \(deviceIndex): the conversion kernels disagree with the CPU (\(selfCheck.firstMismatch ?? "see counts"))"
        } else if check.transfers?.contains(where: { !$0.verified }) == true {
            report.status = .failed
            report.summary = "GPU \(deviceIndex): data copied to the GPU and back came back different"
        } else {
            report.status = .ok
            report.summary = "GPU \(deviceIndex) (\(cuda.devices[deviceIndex].info.name)) passed: kernels match the CPU bit for bit"
        }
        return report
    }
}
