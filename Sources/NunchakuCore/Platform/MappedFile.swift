#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file. Unmapped when the last reference goes away.
///
/// Tensors read from checkpoints are views into one of these, so no tensor bytes are copied
/// until a caller asks for them.
public final class MappedFile: @unchecked Sendable {
    /// The file's path, for error messages.
    public let path: String
    /// The mapped bytes (empty for an empty file). Valid only while this object is alive: keep a reference to the
    /// `MappedFile` for as long as the bytes are used (`Array(MappedFile(path: p).bytes)` may read unmapped memory).
    public let bytes: UnsafeRawBufferPointer

    /// Maps the file at `path` read-only.
    /// - Throws: `NunchakuError.io` naming the file and the system's reason.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw NunchakuError.io(path: path, reason: systemErrorString()) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw NunchakuError.io(path: path, reason: systemErrorString()) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw NunchakuError.io(path: path, reason: "not a regular file")
        }
        let size = Int(info.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw NunchakuError.io(path: path, reason: "mmap failed: \(systemErrorString())")
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// The text of the current `errno`.
func systemErrorString() -> String {
    String(cString: strerror(errno))
}
