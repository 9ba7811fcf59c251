import NunchakuCore

/// Reading small whole files (indexes, configs) into memory.
public enum FileContents {
    /// The bytes of the file at `path`.
    /// - Throws: `SafeTensorsError.io` naming the file and the system's reason.
    public static func read(_ path: String) throws -> [UInt8] {
        do {
            let mapped = try MappedFile(path: path)
            return withExtendedLifetime(mapped) { Array(mapped.bytes) }
        } catch let NunchakuError.io(path, reason) {
            throw SafeTensorsError.io(path: path, reason: reason)
        }
    }
}
