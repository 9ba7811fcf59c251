import Nunchaku

/// Renders a `DoctorReport` as the human-readable text `nunchaku doctor` prints.
enum DoctorTextFormatter {
    static func render(_ report: DoctorReport) -> String {
        var lines: [String] = []
        let host = report.host
        lines.append("Host")
        lines.append(row("OS", host.operatingSystem + (host.kernel.map { " (kernel \($0))" } ?? "")))
        lines.append(row("CPU", "\(host.cpuModel ?? "unknown model"), \(host.logicalCores) logical cores, \(host.architecture)"))
        lines.append(row("memory", bytes(host.memoryBytes)))

        let cuda = report.cuda
        lines.append("")
        lines.append("CUDA driver")
        if cuda.driver.available {
            lines.append(row("library", cuda.driver.libraryPath ?? "?"))
            lines.append(row("version", "CUDA \(cuda.driver.cudaVersion ?? "?")"))
        } else {
            lines.append(row("status", cuda.driver.error ?? "unavailable"))
        }
        lines.append(row("visible", cuda.driver.visibleDevices.map { "CUDA_VISIBLE_DEVICES=\($0)" } ?? "CUDA_VISIBLE_DEVICES unset (all devices)"))
        if let error = cuda.deviceError { lines.append(row("devices", error)) }

        for device in cuda.devices {
            let info = device.info
            lines.append("")
            lines.append("GPU \(info.index): \(info.name)")
            lines.append(row("compute", "\(info.computeCapability.major).\(info.computeCapability.minor) (\(info.computeCapability)), "
                + "\(info.multiprocessorCount) SMs at \(info.clockMHz) MHz, PCI \(info.pciAddress)"))
            lines.append(row("memory", "\(bytes(info.totalMemoryBytes)), \(info.memoryBusWidthBits)-bit bus at \(info.memoryClockMHz) MHz, "
                + "L2 \(bytes(info.l2CacheBytes)), shared/block up to \(bytes(info.maxSharedMemoryPerBlockOptin))"))
            lines.append(row("kernels", device.kernelTarget.map { "built for \($0)" } ?? "cannot be built: \(device.kernelTargetError ?? "?")"))
            for path in device.fourBitPaths {
                lines.append(row(path.format.rawValue, "\(path.kind.rawValue): \(path.summary)"))
            }
        }

        lines.append("")
        lines.append("Libraries")
        lines.append(row("NVRTC", library(cuda.nvrtc)))
        if let builtins = cuda.nvrtc.builtinsPath { lines.append(row("", "builtins \(builtins)")) }
        if let architectures = cuda.nvrtc.supportedArchitectures, let first = architectures.first, let last = architectures.last {
            lines.append(row("", "builds sm_\(first) … sm_\(last)"))
        }
        lines.append(row("cuBLASLt", library(cuda.cublasLt) + (cuda.cublasLt.available ? "" : " (optional)")))
        let cache = cuda.kernelCache
        lines.append(row("cache", cache.enabled
            ? "\(cache.directory ?? "?") (\(cache.files) files, \(bytes(cache.bytes)) before this run)"
            : "off: \(cache.disabledReason ?? "?")"))

        if let check = report.check { lines += render(check) }
        lines.append("")
        let label = switch report.status {
        case .ok: "OK"
        case .cpuOnly: "CPU ONLY"
        case .failed: "FAILED"
        }
        lines.append("Result: \(label): \(report.summary)")
        return lines.joined(separator: "\n")
    }

    private static func render(_ check: DoctorReport.GPUCheck) -> [String] {
        var lines = ["", "Checks on GPU \(check.deviceIndex)"]
        if let result = check.selfCheck {
            for build in result.builds {
                let how = build.fromCache ? "from the kernel cache" : "compiled by NVRTC in \(seconds(build.compileSeconds))"
                lines.append(row("build", "\(build.source) for \(build.target): \(how)" + (build.cacheNote.map { "; \($0)" } ?? "")))
            }
            let verdict = result.passed ? "PASS" : "FAIL"
            lines.append(row("kernels", "\(verdict): f32→bf16 \(result.conversionMismatches) and bf16→f32 \(result.roundTripMismatches) "
                + "mismatching elements of \(result.elements), bit-exact against the CPU"))
            if let mismatch = result.firstMismatch { lines.append(row("", "first: \(mismatch)")) }
            lines.append(row("", "checked launch used \(bytes(result.checkedLaunchSharedBytes)) of dynamic shared memory; "
                + result.resources.map { "\($0.kernel): \($0.registers) registers, \($0.localBytes) B local" }.joined(separator: "; ")))
            let bandwidth = Double(result.elements * 6) / (result.conversionMilliseconds * 1e-3) / 1e9
            lines.append(row("timing", "f32→bf16 of \(result.elements) elements: \(fixed(result.conversionMilliseconds, 3)) ms "
                + "(\(fixed(bandwidth, 0)) GB/s read+written)"))
        }
        for transfer in check.transfers ?? [] {
            lines.append(row("copy", "\(transfer.direction) \(bytes(transfer.bytes)): \(fixed(transfer.milliseconds, 3)) ms, "
                + "\(fixed(transfer.gigabytesPerSecond, 1)) GB/s" + (transfer.verified ? "" : " (DATA CORRUPTED)")))
        }
        if let memory = check.memory {
            var text = "peak \(bytes(memory.peakLiveBytes)) in buffers (\(memory.totalAllocations) allocations), \(bytes(memory.liveBytes)) live"
            if let reserved = memory.reservedBytes, let peak = memory.peakReservedBytes {
                text += "; pool holds \(bytes(reserved)), peak \(bytes(peak))"
            }
            lines.append(row("memory", text))
        }
        if let free = check.freeMemoryBytes { lines.append(row("free", bytes(free))) }
        if let error = check.error { lines.append(row("error", error)) }
        return lines
    }

    private static func library(_ library: CUDASystemReport.Library) -> String {
        library.available ? "\(library.path ?? "?") (\(library.version ?? "?"))" : "not found: \(library.error ?? "?")"
    }

    private static func row(_ label: String, _ value: String) -> String {
        "  " + label.padding(toLength: 10) + value
    }

    private static func bytes(_ count: Int) -> String { ByteCountText.describe(count) }

    private static func seconds(_ value: Double) -> String { "\(fixed(value, 2)) s" }

    /// `value` with `digits` decimals.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (value * scale).rounded()
        let whole = Int(scaled / scale)
        guard digits > 0 else { return "\(Int(scaled))" }
        let fraction = Int(abs(scaled - Double(whole) * scale).rounded())
        let fractionText = String(fraction)
        return "\(value < 0 && whole == 0 ? "-" : "")\(whole)." + String(repeating: "0", count: max(0, digits - fractionText.count)) + fractionText
    }
}

extension String {
    /// The string padded with spaces to at least `length` characters.
    func padding(toLength length: Int) -> String {
        count >= length ? self + " " : self + String(repeating: " ", count: length - count)
    }
}
