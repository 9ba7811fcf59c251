import NunchakuCore

/// A kernel compiled by NVRTC: a cubin or PTX image plus what built it.
public struct CompiledKernelImage: Sendable {
    public enum Format: String, Sendable { case cubin, ptx }

    public let sourceName: String
    public let target: CUDATarget
    public let bytes: [UInt8]
    public let compilerVersion: CUDAVersion
    /// NVRTC's program log (warnings), empty when it had nothing to say.
    public let log: String

    public var format: Format { target.output == .cubin ? .cubin : .ptx }

    /// The bytes as `cuModuleLoadDataEx` wants them (PTX must end with a NUL).
    var loadableBytes: [UInt8] {
        format == .ptx && bytes.last != 0 ? bytes + [0] : bytes
    }
}

/// NVRTC, the CUDA runtime compiler, loaded with `dlopen` from the first place `CUDALibrarySearch` finds it.
///
/// NVRTC loads `libnvrtc-builtins.so.<major>.<minor>` when it compiles; it does not look beside itself, so the
/// matching builtins library from the same folder is loaded first (the loader then reuses it by its soname):
/// no `LD_LIBRARY_PATH` is needed for NVRTC installed from a Python wheel.
public final class NVRTC: @unchecked Sendable {
    /// The file NVRTC was loaded from.
    public let libraryPath: String
    /// The builtins library loaded beside it, or nil when none was found there (NVRTC then relies on the loader path).
    public let builtinsPath: String?
    public let version: CUDAVersion
    /// Architectures NVRTC can build machine code for (75, 80, …, 120).
    public let supportedArchitectures: [Int]

    let api: NVRTCAPI
    private let library: DynamicLibrary
    private let builtins: DynamicLibrary?

    /// Loads NVRTC from the first of `search`'s candidates that opens.
    /// - Throws: `CUDAError.nvrtcUnavailable` listing where it looked.
    public convenience init(search: CUDALibrarySearch = CUDALibrarySearch()) throws {
        let candidates = search.candidates(for: .nvrtc)
        let folders = search.directories(for: .nvrtc)
        let searched = folders.isEmpty ? "no candidate folders exist" : "searched \(folders.joined(separator: ", "))"
        try self.init(candidates: candidates, searchDescription: "\(searched), then the loader path; "
            + "install it with `pip install nvidia-cuda-nvrtc` or set \(CUDALibrarySearch.Library.nvrtc.overrideVariable)")
    }

    /// Loads NVRTC from the first of `candidates` that opens.
    init(candidates: [String], searchDescription: String) throws {
        do {
            library = try DynamicLibrary(firstOf: candidates)
        } catch let error as NunchakuError {
            guard case let .libraryNotFound(_, reason) = error else { throw error }
            throw CUDAError.nvrtcUnavailable(reason: "no libnvrtc could be loaded (\(reason)); \(searchDescription)")
        }
        do {
            api = try NVRTCAPI(library: library)
        } catch {
            throw CUDAError.nvrtcUnavailable(reason: "\(library.name) is not a usable NVRTC: \(error)")
        }
        libraryPath = library.file(definingSymbol: "nvrtcVersion") ?? library.name
        var major: Int32 = 0
        var minor: Int32 = 0
        guard api.nvrtcVersion(&major, &minor) == NVRTCAPI.success else {
            throw CUDAError.nvrtcUnavailable(reason: "nvrtcVersion failed in \(libraryPath)")
        }
        version = CUDAVersion(major: Int(major), minor: Int(minor))
        var count: Int32 = 0
        var architectures: [Int32] = []
        if api.nvrtcGetNumSupportedArchs(&count) == NVRTCAPI.success, count > 0 {
            architectures = [Int32](repeating: 0, count: Int(count))
            if api.nvrtcGetSupportedArchs(&architectures) != NVRTCAPI.success { architectures = [] }
        }
        supportedArchitectures = architectures.map(Int.init).sorted()
        (builtins, builtinsPath) = Self.loadBuiltins(besides: libraryPath, version: version)
    }

    private static let sharedLock = CUDALock()
    nonisolated(unsafe) private static var sharedResult: Result<NVRTC, CUDAError>?

    /// The process-wide NVRTC, found and loaded on first use (a failure is remembered and rethrown).
    public static func shared() throws -> NVRTC {
        try sharedLock.withLock {
            if let sharedResult { return try sharedResult.get() }
            let result: Result<NVRTC, CUDAError>
            do {
                result = .success(try NVRTC())
            } catch let error as CUDAError {
                result = .failure(error)
            } catch {
                result = .failure(.nvrtcUnavailable(reason: "\(error)"))
            }
            sharedResult = result
            return try result.get()
        }
    }

    private static func loadBuiltins(besides path: String, version: CUDAVersion) -> (DynamicLibrary?, String?) {
        guard let slash = path.lastIndex(of: "/") else { return (nil, nil) }
        let folder = String(path[..<slash])
        let exact = "\(folder)/libnvrtc-builtins.so.\(version.major).\(version.minor)"
        let others = CUDALibrarySearch.libraryFiles(named: "libnvrtc-builtins", in: folder)
        for candidate in [exact] + others where Environment.fileExists(candidate) {
            if let library = try? DynamicLibrary(firstOf: [candidate]) { return (library, candidate) }
        }
        return (nil, nil)
    }

    /// Compiles `source` (with `headers` available to `#include`) for `target`.
    /// - Throws: `CUDAError.compilationFailed` with NVRTC's log when the source does not compile,
    ///   `.nvrtcCall` for any other NVRTC failure.
    public func compile(_ source: KernelSource, headers: [KernelHeader], target: CUDATarget,
                        options: [String]) throws -> CompiledKernelImage {
        var program: NVRTCAPI.Program?
        let created = withCStrings(headers.map(\.text)) { headerTexts in
            withCStrings(headers.map(\.name)) { headerNames in
                api.nvrtcCreateProgram(&program, source.text, source.name, Int32(headers.count), headerTexts, headerNames)
            }
        }
        try check(created, "nvrtcCreateProgram(\(source.name))")
        defer { _ = api.nvrtcDestroyProgram(&program) }

        let compiled = withCStrings(options) { api.nvrtcCompileProgram(program, Int32(options.count), $0) }
        let log = programLog(program)
        guard compiled == NVRTCAPI.success else {
            if compiled == NVRTCAPI.compilationError {
                throw CUDAError.compilationFailed(source: source.name, target: target.description, log: log)
            }
            let builtinsNote = builtinsPath == nil ? " (no libnvrtc-builtins was found beside \(libraryPath))" : ""
            throw CUDAError.nvrtcCall(call: "nvrtcCompileProgram(\(source.name), \(target))", code: compiled,
                                      message: "\(errorString(compiled))\(builtinsNote): \(log)")
        }
        let (sizeCall, getCall): (String, String) = target.output == .cubin
            ? ("nvrtcGetCUBINSize", "nvrtcGetCUBIN") : ("nvrtcGetPTXSize", "nvrtcGetPTX")
        var size = 0
        try check(target.output == .cubin ? api.nvrtcGetCUBINSize(program, &size) : api.nvrtcGetPTXSize(program, &size), sizeCall)
        var bytes = [UInt8](repeating: 0, count: size)
        let fetched = bytes.withUnsafeMutableBytes { buffer in
            let pointer = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
            return target.output == .cubin ? api.nvrtcGetCUBIN(program, pointer) : api.nvrtcGetPTX(program, pointer)
        }
        try check(fetched, getCall)
        return CompiledKernelImage(sourceName: source.name, target: target, bytes: bytes, compilerVersion: version, log: log)
    }

    private func programLog(_ program: NVRTCAPI.Program?) -> String {
        var size = 0
        guard api.nvrtcGetProgramLogSize(program, &size) == NVRTCAPI.success, size > 1 else { return "" }
        var buffer = [CChar](repeating: 0, count: size)
        guard api.nvrtcGetProgramLog(program, &buffer) == NVRTCAPI.success else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .trimmingTrailingWhitespace()
    }

    private func check(_ result: Int32, _ call: String) throws {
        guard result != NVRTCAPI.success else { return }
        throw CUDAError.nvrtcCall(call: call, code: result, message: errorString(result))
    }

    private func errorString(_ result: Int32) -> String {
        api.nvrtcGetErrorString(result).map { String(cString: $0) } ?? "NVRTC error \(result)"
    }
}

/// Calls `body` with a C array of NUL-terminated copies of `strings` (nil when empty), valid during the call.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let copies = strings.map { string -> UnsafeMutablePointer<CChar> in
        let utf8 = Array(string.utf8CString)
        let copy = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count)
        copy.initialize(from: utf8, count: utf8.count)
        return copy
    }
    defer { copies.forEach { $0.deallocate() } }
    let pointers = copies.map { UnsafePointer<CChar>?($0) }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
}

extension String {
    /// The string without trailing spaces and newlines.
    func trimmingTrailingWhitespace() -> String {
        var result = self
        while let last = result.last, last.isWhitespace { result.removeLast() }
        return result
    }
}
