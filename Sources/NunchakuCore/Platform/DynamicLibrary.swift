#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A shared library opened with `dlopen`, for reaching CUDA without linking it.
public final class DynamicLibrary: @unchecked Sendable {
    /// The name or path the library was opened by.
    public let name: String
    private let handle: UnsafeMutableRawPointer

    /// Opens the first of `candidates` that loads.
    /// - Throws: `NunchakuError.libraryNotFound` listing every candidate and the loader's last message.
    public init(firstOf candidates: [String]) throws {
        var lastMessage = "no candidates"
        for candidate in candidates {
            if let handle = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
                self.name = candidate
                self.handle = handle
                return
            }
            lastMessage = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
        }
        throw NunchakuError.libraryNotFound(candidates: candidates, reason: lastMessage)
    }

    /// The address of `symbol`, or nil when the library does not export it.
    public func address(of symbol: String) -> UnsafeMutableRawPointer? {
        dlsym(handle, symbol)
    }

    /// `symbol` as a C function pointer of type `T`.
    /// - Throws: `NunchakuError.symbolNotFound` when the library lacks it.
    public func function<T>(_ symbol: String, as type: T.Type = T.self) throws -> T {
        guard let pointer = address(of: symbol) else {
            throw NunchakuError.symbolNotFound(library: name, symbol: symbol)
        }
        return unsafeBitCast(pointer, to: T.self)
    }

    /// The file that defines `symbol` (the library's path on disk), when the platform can tell.
    public func file(definingSymbol symbol: String) -> String? {
        guard let pointer = address(of: symbol) else { return nil }
        #if os(Linux)
        return Self.mappedFile(containing: UInt(bitPattern: pointer))
        #else
        var info = Dl_info()
        guard dladdr(pointer, &info) != 0, let fileName = info.dli_fname else { return nil }
        return String(cString: fileName)
        #endif
    }

    #if os(Linux)
    /// The path of the mapping in /proc/self/maps that holds `address` (glibc's dladdr needs _GNU_SOURCE).
    private static func mappedFile(containing address: UInt) -> String? {
        readProcMaps().flatMap { lookUp(address, in: $0) }
    }

    private static func readProcMaps() -> String? {
        guard let file = fopen("/proc/self/maps", "r") else { return nil }
        defer { fclose(file) }
        var text = ""
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            text += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return text
    }

    private static func lookUp(_ address: UInt, in maps: String) -> String? {
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, let dash = fields[0].firstIndex(of: "-"),
                  let low = UInt(fields[0][..<dash], radix: 16),
                  let high = UInt(fields[0][fields[0].index(after: dash)...], radix: 16),
                  (low..<high).contains(address) else { continue }
            return fields[5...].joined(separator: " ")
        }
        return nil
    }
    #endif
}
