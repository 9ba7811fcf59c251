#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NunchakuCore

/// Compiled kernels on disk, keyed by SHA-256 of (source and headers, compile options, NVRTC version, target).
///
/// Lives in `$XDG_CACHE_HOME/swift-nunchaku/kernels` or `~/.cache/swift-nunchaku/kernels`;
/// `NUNCHAKU_KERNEL_CACHE=off` turns it off. Each file is written to a temporary name and renamed into place, so a
/// reader never sees half a file; each carries a checksum of its payload, and a file that fails it is deleted and
/// treated as absent.
public struct KernelCache: Sendable {
    /// The cache folder, or nil when caching is off.
    public let directory: String?
    /// Why caching is off, when it is.
    public let disabledReason: String?

    /// Bumped when the key recipe or file layout changes, so old files are never read.
    static let formatVersion: UInt8 = 1
    private static let magic: [UInt8] = Array("NKKC".utf8)

    /// A cache in `directory`.
    public init(directory: String) {
        self.directory = directory
        disabledReason = nil
    }

    /// No caching; `reason` says why.
    public init(disabledBecause reason: String) {
        directory = nil
        disabledReason = reason
    }

    /// The cache the environment asks for (see the type's documentation).
    public static func fromEnvironment(_ environment: (String) -> String? = { Environment.value($0) }) -> KernelCache {
        if let setting = environment("NUNCHAKU_KERNEL_CACHE"), ["off", "0", "false", "no"].contains(setting.lowercased()) {
            return KernelCache(disabledBecause: "NUNCHAKU_KERNEL_CACHE=\(setting)")
        }
        if let base = environment("XDG_CACHE_HOME") { return KernelCache(directory: "\(base)/swift-nunchaku/kernels") }
        if let home = environment("HOME") { return KernelCache(directory: "\(home)/.cache/swift-nunchaku/kernels") }
        return KernelCache(disabledBecause: "neither XDG_CACHE_HOME nor HOME is set")
    }

    /// The cache key (64 hex digits) of compiling `source` with `headers` for `target` with `options` by NVRTC `version`.
    public static func key(source: KernelSource, headers: [KernelHeader], target: CUDATarget, options: [String],
                           compilerVersion: CUDAVersion) -> String {
        var hasher = SHA256()
        hasher.update(field: "swift-nunchaku kernel cache \(formatVersion)")
        hasher.update(field: source.name)
        hasher.update(field: source.text)
        for header in headers {
            hasher.update(field: header.name)
            hasher.update(field: header.text)
        }
        options.forEach { hasher.update(field: $0) }
        hasher.update(field: "nvrtc \(compilerVersion)")
        hasher.update(field: target.description)
        return SHA256.hexString(hasher.finalize())
    }

    /// The file a key's image lives in: readable name first, then part of the key.
    public func path(forKey key: String, source: KernelSource, target: CUDATarget) -> String? {
        guard let directory else { return nil }
        let stem = source.name.split(separator: ".").first.map(String.init) ?? source.name
        return "\(directory)/\(stem)-\(target)-\(key.prefix(24)).\(target.output.rawValue)"
    }

    /// The cached image bytes for `path`, or nil when absent or damaged (a damaged file is removed).
    public func load(path: String) -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let bytes = [UInt8](data)
        let headerSize = Self.magic.count + 1 + 32
        guard bytes.count > headerSize, Array(bytes[0..<4]) == Self.magic, bytes[4] == Self.formatVersion else {
            try? FileManager.default.removeItem(atPath: path)
            return nil
        }
        let payload = Array(bytes[headerSize...])
        var hasher = SHA256()
        hasher.update(payload)
        guard hasher.finalize() == Array(bytes[5..<headerSize]) else {
            try? FileManager.default.removeItem(atPath: path)
            return nil
        }
        return payload
    }

    /// Writes `payload` to `path` atomically (temporary file, then rename), creating the folder if needed.
    /// - Throws: `NunchakuError.io` naming the path when the folder or file cannot be written.
    public func store(_ payload: [UInt8], path: String) throws {
        guard let directory else { return }
        var hasher = SHA256()
        hasher.update(payload)
        let file = Self.magic + [Self.formatVersion] + hasher.finalize() + payload
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data(file).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw NunchakuError.io(path: path, reason: "cannot write the kernel cache: \(error)")
        }
    }

    /// How many compiled images the cache holds and their total size.
    public func contents() -> (files: Int, bytes: Int) {
        guard let directory, let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return (0, 0) }
        let images = names.filter { $0.hasSuffix(".cubin") || $0.hasSuffix(".ptx") }
        let bytes = images.reduce(0) { total, name in
            let size = (try? FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)"))?[.size]
            return total + ((size as? Int) ?? (size as? UInt64).map(Int.init) ?? 0)
        }
        return (images.count, bytes)
    }
}
