#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Process environment and host facts, kept in the platform shim so other code needs no libc import.
public enum Environment {
    /// The value of the environment variable `name`, or nil when unset or empty.
    public static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }

    /// The number of processors the OS reports online.
    public static var processorCount: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// Whether a file or folder exists at `path`.
    public static func fileExists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}
