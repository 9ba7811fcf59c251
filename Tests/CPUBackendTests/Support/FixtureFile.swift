import Foundation
import NunchakuCore

/// A minimal, test-only safetensors reader for the committed fixtures (8-byte little-endian header length,
/// JSON header, raw bytes). To be replaced by the SafeTensors module's reader once it is on main.
struct FixtureFile {
    let tensors: [String: Tensor]
    let metadata: [String: String]

    /// Reads `Fixtures/<name>` in this test target's folder.
    init(named name: String) throws {
        let targetFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        try self.init(url: targetFolder.appendingPathComponent("Fixtures").appendingPathComponent(name))
    }

    init(url: URL) throws {
        let data = try Data(contentsOf: url)
        let path = url.path
        guard data.count >= 8 else { throw NunchakuError.io(path: path, reason: "shorter than a safetensors header") }
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard headerLength > 0, 8 + headerLength <= data.count,
              let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any]
        else { throw NunchakuError.io(path: path, reason: "bad safetensors header") }
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, entry) in header {
            if name == "__metadata__" {
                metadata = entry as? [String: String] ?? [:]
                continue
            }
            guard let entry = entry as? [String: Any], let dtypeName = entry["dtype"] as? String,
                  let dtype = DType(safetensorsName: dtypeName), let shape = entry["shape"] as? [Int],
                  let offsets = entry["data_offsets"] as? [Int], offsets.count == 2,
                  8 + headerLength + offsets[1] <= data.count, offsets[0] <= offsets[1]
            else { throw NunchakuError.io(path: path, reason: "bad header entry for \(name)") }
            let start = 8 + headerLength + offsets[0], end = 8 + headerLength + offsets[1]
            tensors[name] = try Tensor(shape: shape, dtype: dtype, bytes: data.subdata(in: start..<end))
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The tensor called `name`, or an error naming it.
    func callAsFunction(_ name: String) throws -> Tensor {
        guard let tensor = tensors[name] else {
            throw NunchakuError.invalidArgument(context: name, reason: "not in the fixture")
        }
        return tensor
    }
}

/// ‖a − b‖ / ‖b‖ over all elements, in `Double`.
func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "compared arrays differ in length")
    var difference = 0.0, reference = 0.0
    for (x, y) in zip(a, b) {
        difference += (Double(x) - Double(y)) * (Double(x) - Double(y))
        reference += Double(y) * Double(y)
    }
    return (difference / max(reference, .leastNonzeroMagnitude)).squareRoot()
}

/// The largest |a − b| / (|b| + floor · rms(b)) over all elements: relative for large elements, and relative to the
/// tensor's typical size for elements near zero (where fp32 references carry cancellation error).
func maxElementError(_ a: [Float], _ b: [Float], floor: Double = 1) -> Double {
    precondition(a.count == b.count, "compared arrays differ in length")
    let rms = (b.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(b.count, 1))).squareRoot()
    return zip(a, b).map { abs(Double($0) - Double($1)) / (abs(Double($1)) + floor * rms) }.max() ?? 0
}
