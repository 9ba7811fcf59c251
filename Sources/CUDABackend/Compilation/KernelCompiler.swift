/// How one kernel file was obtained: compiled now or read from the cache.
public struct KernelBuildRecord: Sendable, Codable, Equatable {
    public let source: String
    public let target: String
    public let fromCache: Bool
    /// Seconds spent compiling (0 for a cache hit) and loading.
    public let compileSeconds: Double
    /// Set when the cache could not be written (the kernel still works).
    public let cacheNote: String?
}

/// NVRTC plus the disk cache: turns a `KernelSource` into a loadable image for a target.
public final class KernelCompiler: @unchecked Sendable {
    public let nvrtc: NVRTC
    public let cache: KernelCache
    /// Options added after the target and language standard (e.g. `-lineinfo`); part of the cache key.
    public let extraOptions: [String]
    public let headers: [KernelHeader]

    public init(nvrtc: NVRTC, cache: KernelCache = .fromEnvironment(), headers: [KernelHeader] = KernelRegistry.headers,
                extraOptions: [String] = []) {
        self.nvrtc = nvrtc
        self.cache = cache
        self.headers = headers
        self.extraOptions = extraOptions
    }

    /// A compiler with the process-wide NVRTC and the environment's cache.
    /// - Throws: `CUDAError.nvrtcUnavailable` when no NVRTC can be found.
    public static func makeDefault() throws -> KernelCompiler {
        KernelCompiler(nvrtc: try NVRTC.shared())
    }

    /// The full NVRTC option list for `target`.
    public func options(for target: CUDATarget) -> [String] {
        [target.nvrtcOption, "--std=c++17"] + extraOptions
    }

    /// The image of `source` for `target`, from the cache when present (unless `bypassingCache`), else compiled and stored.
    /// - Throws: what `NVRTC.compile` throws; a cache that cannot be written is noted in the record, not thrown.
    public func build(_ source: KernelSource, for target: CUDATarget,
                      bypassingCache: Bool = false) throws -> (image: CompiledKernelImage, record: KernelBuildRecord) {
        let options = options(for: target)
        let key = KernelCache.key(source: source, headers: headers, target: target, options: options,
                                  compilerVersion: nvrtc.version)
        let path = cache.path(forKey: key, source: source, target: target)
        if !bypassingCache, let path, let bytes = cache.load(path: path) {
            let image = CompiledKernelImage(sourceName: source.name, target: target, bytes: bytes,
                                            compilerVersion: nvrtc.version, log: "")
            return (image, KernelBuildRecord(source: source.name, target: target.description, fromCache: true,
                                             compileSeconds: 0, cacheNote: nil))
        }
        let clock = ContinuousClock()
        var image: CompiledKernelImage?
        let elapsed = try clock.measure {
            image = try nvrtc.compile(source, headers: headers, target: target, options: options)
        }
        var note: String?
        if let path {
            do { try cache.store(image!.bytes, path: path) } catch { note = "\(error)" }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return (image!, KernelBuildRecord(source: source.name, target: target.description, fromCache: false,
                                          compileSeconds: seconds, cacheNote: note))
    }
}
