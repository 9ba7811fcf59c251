import Foundation
import NunchakuCore
import SafeTensors

/// A committed fixture file (safetensors) of this test target, read whole.
struct FixtureFile {
    let tensors: [String: Tensor]
    let metadata: [String: String]

    /// Reads `Fixtures/<name>` in this test target's folder.
    init(named name: String) throws {
        let targetFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let file = try SafeTensorsFile(path: targetFolder.appendingPathComponent("Fixtures").appendingPathComponent(name).path)
        tensors = try Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, try file.tensor($0)) })
        metadata = file.metadata ?? [:]
    }

    /// The tensor called `name`, or an error naming it.
    func callAsFunction(_ name: String) throws -> Tensor {
        guard let tensor = tensors[name] else {
            throw NunchakuError.invalidArgument(context: name, reason: "not in the fixture")
        }
        return tensor
    }
}

/// The largest |a − b| / (|b| + floor · rms(b)) over all elements: relative for large elements, and relative to the
/// tensor's typical size for elements near zero (where fp32 references carry cancellation error).
func maxElementError(_ a: [Float], _ b: [Float], floor: Double = 1) -> Double {
    precondition(a.count == b.count, "compared arrays differ in length")
    let rms = (b.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(b.count, 1))).squareRoot()
    return zip(a, b).map { abs(Double($0) - Double($1)) / (abs(Double($1)) + floor * rms) }.max() ?? 0
}
