import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Nunchaku

/// `nunchaku doctor`: what this machine offers, and whether the GPU path works on it.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check this machine: CPU, GPUs, CUDA driver, NVRTC, cuBLASLt, kernel cache; run a GPU kernel against the CPU.",
        discussion: """
        Lists the host and every visible GPU (name, compute capability, memory, SMs), the CUDA driver, NVRTC and \
        cuBLASLt it found and where, the kernel cache, and which code path each 4-bit format takes on each GPU. \
        On GPU --device it then builds the conversion kernels (or reads them from the cache), checks them bit for \
        bit against the CPU, and times large copies between pinned host memory and the device.

        Exit status: 0 when the checks pass or no GPU/driver exists (everything then runs on the CPU); 1 when a GPU \
        is present but a check fails, or --device names a GPU that does not exist.

        Environment: CUDA_VISIBLE_DEVICES (applied by the driver), NUNCHAKU_NVRTC_PATH and NUNCHAKU_CUBLASLT_PATH \
        (a file or folder to load the library from), NUNCHAKU_KERNEL_CACHE=off, XDG_CACHE_HOME.
        """)

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: "Index of the GPU to run the checks on (among the visible ones).")
    var device = 0

    @Option(name: .customLong("copy-mib"), help: "MiB per copy for the transfer timing; 0 skips it.")
    var copyMiB = 256

    func validate() throws {
        guard device >= 0 else { throw ValidationError("--device must be 0 or more, got \(device)") }
        guard copyMiB >= 0 else { throw ValidationError("--copy-mib must be 0 or more, got \(copyMiB)") }
    }

    func run() throws {
        let report = DoctorReport.gather(deviceIndex: device, copyBytes: copyMiB << 20)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(DoctorTextFormatter.render(report))
        }
        if report.status == .failed { throw ExitCode.failure }
    }
}
