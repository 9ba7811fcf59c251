import Foundation
import NunchakuCore
import SafeTensors

/// A scratch file that converted tensors are appended to one layer at a time, so a conversion never holds more than
/// one layer in memory; once every layer is done the file is memory-mapped (and unlinked) and its tensors are handed
/// to `SafeTensorsWriter` as views, which streams them into the output.
final class TensorSpool {
    /// Where one spooled tensor lies.
    struct Slot {
        let dtype: SafeTensorsDType
        let shape: [Int]
        let offset: Int
    }

    private let path: String
    private var handle: FileHandle?
    private(set) var byteCount = 0

    /// Creates the scratch file in the folder of `destination` (same disk, no extra space elsewhere).
    init(besides destination: String) throws {
        path = destination + ".spool-" + UUID().uuidString
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw SVDQuantCheckpointError.invalidOutput(path: destination, reason: "cannot create the scratch file \(path)")
        }
        self.handle = handle
    }

    /// Appends `tensor`'s bytes (contiguous, little endian as in memory).
    /// - Throws: `SafeTensorsError.unsupportedDType` for dtypes safetensors cannot name, `.invalidOutput` on write errors.
    func append(_ tensor: Tensor, name: String) throws -> Slot {
        let raw = try RawTensor(tensor, name: name)
        let slot = Slot(dtype: raw.dtype, shape: raw.shape, offset: byteCount)
        do {
            try raw.withUnsafeBytes { try handle?.write(contentsOf: Data($0)) }
        } catch {
            throw SVDQuantCheckpointError.invalidOutput(path: path, reason: "cannot write the scratch file: \(error)")
        }
        byteCount += raw.byteCount
        return slot
    }

    /// Closes and maps the scratch file, then unlinks it (the mapping keeps the bytes). Call once, after the last append.
    func finish() throws -> SpooledTensors {
        do {
            try handle?.close()
        } catch {
            throw SVDQuantCheckpointError.invalidOutput(path: path, reason: "cannot close the scratch file: \(error)")
        }
        handle = nil
        let mapped = try MappedFile(path: path)
        try? FileManager.default.removeItem(atPath: path)
        return SpooledTensors(storage: TensorStorage(mapped: mapped, offset: 0, count: mapped.bytes.count))
    }

    deinit {
        try? handle?.close()
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// The mapped scratch file of a finished `TensorSpool`.
struct SpooledTensors {
    let storage: TensorStorage

    func tensor(_ slot: TensorSpool.Slot, name: String) throws -> RawTensor {
        try RawTensor(dtype: slot.dtype, shape: slot.shape, storage: storage, byteOffset: slot.offset, name: name)
    }
}
