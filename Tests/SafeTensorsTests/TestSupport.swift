import NunchakuCore
import Foundation
@testable import SafeTensors

/// The seeded generator of randomized tests, so failures reproduce.
typealias SeededGenerator = SplitMix64

/// A safetensors file assembled by hand: length prefix, `header` text verbatim, then `data`.
func fileBytes(header: String, data: [UInt8] = []) -> [UInt8] {
    let text = Array(header.utf8)
    return withUnsafeBytes(of: UInt64(text.count).littleEndian) { Array($0) } + text + data
}

/// A folder under the system temporary directory, deleted when the value goes away.
final class TemporaryFolder {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// The path of `name` inside the folder.
    func file(_ name: String) -> String {
        path + "/" + name
    }

    /// Writes `bytes` to `name` inside the folder and returns its path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: file(name)))
        return file(name)
    }

    /// The names of the folder's entries, sorted.
    func listing() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// The header JSON text of a safetensors file (without padding).
func headerText(of bytes: [UInt8]) -> String {
    let length = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
    return String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
}
