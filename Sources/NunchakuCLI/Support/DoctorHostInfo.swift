#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The host part of `nunchaku doctor`: OS, CPU, memory.
struct DoctorHostInfo: Codable {
    var operatingSystem: String
    /// The kernel release where the OS exposes it (`/proc/sys/kernel/osrelease`).
    var kernel: String?
    /// The CPU model name where the OS exposes it (`/proc/cpuinfo`).
    var cpuModel: String?
    var architecture: String
    var logicalCores: Int
    var memoryBytes: Int

    static func gather() -> DoctorHostInfo {
        let process = ProcessInfo.processInfo
        return DoctorHostInfo(
            operatingSystem: process.operatingSystemVersionString,
            kernel: readText("/proc/sys/kernel/osrelease")?.split(separator: "\n").first.map(String.init),
            cpuModel: readText("/proc/cpuinfo").flatMap(cpuModel(inCPUInfo:)),
            architecture: currentArchitecture,
            logicalCores: process.activeProcessorCount,
            memoryBytes: Int(clamping: process.physicalMemory))
    }

    /// The first `model name` line of `/proc/cpuinfo` text.
    static func cpuModel(inCPUInfo text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return String(line[line.index(after: colon)...].drop { $0.isWhitespace })
        }
        return nil
    }

    private static func readText(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    private static var currentArchitecture: String {
        #if arch(x86_64)
        "x86_64"
        #elseif arch(arm64)
        "arm64"
        #else
        "unknown"
        #endif
    }
}
