#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file written under a temporary name next to its destination and renamed into place only
/// when complete, so readers never see a half-written file (and a file being replaced can
/// still be mapped while the new one is written).
final class AtomicFileOutput {
    let destination: String
    private let temporaryPath: String
    private var descriptor: Int32
    private var committed = false

    /// Creates the temporary file in the destination's folder.
    init(destination: String) throws {
        self.destination = destination
        var suffix = SystemRandomNumberGenerator()
        temporaryPath = "\(destination).tmp-\(getpid())-\(String(suffix.next() & 0xFFFF_FFFF, radix: 16))"
        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw SafeTensorsError.io(path: destination, reason: "cannot create \(temporaryPath): \(Self.errorText())")
        }
    }

    /// Writes all of `bytes`, retrying short writes and interruptions.
    func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard var base = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let written = write(descriptor, base, min(remaining, 1 << 30))
            if written < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError.io(path: destination, reason: "write failed: \(Self.errorText())")
            }
            base += written
            remaining -= written
        }
    }

    /// Flushes the data to disk and renames the temporary file to the destination.
    func commit() throws {
        guard fsync(descriptor) == 0 else {
            throw SafeTensorsError.io(path: destination, reason: "fsync failed: \(Self.errorText())")
        }
        let status = close(descriptor)
        descriptor = -1
        guard status == 0 else { throw SafeTensorsError.io(path: destination, reason: "close failed: \(Self.errorText())") }
        guard rename(temporaryPath, destination) == 0 else {
            throw SafeTensorsError.io(path: destination, reason: "cannot rename \(temporaryPath) into place: \(Self.errorText())")
        }
        committed = true
    }

    /// Closes and deletes the temporary file unless `commit()` succeeded.
    deinit {
        if descriptor >= 0 { close(descriptor) }
        if !committed { unlink(temporaryPath) }
    }

    private static func errorText() -> String {
        String(cString: strerror(errno))
    }
}
