import NunchakuCore
import Testing
@testable import SafeTensors

/// Valid files the fuzzer starts from.
private func seedFiles() throws -> [[UInt8]] {
    var everyDType = SafeTensorsWriter(metadata: ["format": "pt", "config": "{\"rank\": 32}"])
    for (name, tensor) in try tensorOfEveryDType() { try everyDType.add(name, tensor) }
    var blocks = SafeTensorsWriter()
    for block in 0..<4 { try blocks.add("blocks.\(block).weight", Tensor([1, 2, 3, 4], shape: [2, 2], dtype: .bf16)) }
    try blocks.add("empty", Tensor(zeros: [0, 3], dtype: .f32))
    return [
        try everyDType.serialized(),
        try blocks.serialized(),
        fileBytes(header: "{}"),
        fileBytes(header: #" {"t": {"dtype": "F4", "shape": [2, 2], "data_offsets": [0, 2]}, "__metadata__": null}  "#, data: [0x21, 0xF7]),
    ]
}

/// Bytes the header grammar is made of, so mutations often stay near-valid JSON.
private let jsonBytes = Array(#"{}[]":,0123456789-.eE tfnul\ "#.utf8)
private let replacementTexts = ["0", "1", "-1", "7", "4294967296", "18446744073709551616", "1.5", "1e3", "null", "\"F4\"",
                                "\"F6_E2M3\"", "\"C64\"", "\"F8_E8M0\"", "\"X\"", "[]", "{}", "[0,1]", "\"__metadata__\""]

/// Applies one random change: flipped or JSON-flavoured bytes, truncation, extension, a new length
/// prefix, a replaced number or string, a deleted or duplicated range, or a changed data byte.
private func mutate(_ bytes: inout [UInt8], using random: inout SeededGenerator) {
    let declaredLength = bytes.count < 8 ? 0 : bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    let headerEnd = bytes.count < 8 ? bytes.count : 8 + Int(min(declaredLength, UInt64(bytes.count - 8)))
    func position(inHeader: Bool) -> Int {
        inHeader && headerEnd > 8 ? Int.random(in: 8..<headerEnd, using: &random) : Int.random(in: 0..<max(bytes.count, 1), using: &random)
    }
    guard !bytes.isEmpty else {
        bytes = (0..<Int.random(in: 0..<16, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
        return
    }
    switch Int.random(in: 0..<11, using: &random) {
    case 0:
        bytes[position(inHeader: false)] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &random)
    case 1:
        bytes[position(inHeader: true)] = jsonBytes.randomElement(using: &random)!
    case 2:
        bytes.removeLast(Int.random(in: 0...bytes.count, using: &random))
    case 3:
        bytes += (0..<Int.random(in: 1...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
    case 4:
        let length: UInt64 = switch Int.random(in: 0..<4, using: &random) {
        case 0: UInt64(max(0, headerEnd - 8 + Int.random(in: -16...16, using: &random)))
        case 1: UInt64.random(in: 0...UInt64.max, using: &random)
        case 2: UInt64(bytes.count)
        default: UInt64.random(in: 99_999_990...100_000_010, using: &random)
        }
        let prefix = withUnsafeBytes(of: length.littleEndian) { Array($0) }
        for index in 0..<min(8, bytes.count) { bytes[index] = prefix[index] }
    case 5, 6:
        let start = position(inHeader: true)
        let end = min(bytes.count, start + Int.random(in: 1...12, using: &random))
        let replacement = Array(replacementTexts.randomElement(using: &random)!.utf8)
        bytes.replaceSubrange(start..<end, with: replacement)
        if Bool.random(using: &random), bytes.count >= 8 {
            let length = withUnsafeBytes(of: UInt64(max(0, headerEnd - 8 - (end - start) + replacement.count)).littleEndian) { Array($0) }
            bytes.replaceSubrange(0..<8, with: length)
        }
    case 7:
        let start = position(inHeader: true)
        bytes.removeSubrange(start..<min(bytes.count, start + Int.random(in: 1...24, using: &random)))
    case 8:
        let start = position(inHeader: true)
        let slice = bytes[start..<min(bytes.count, start + Int.random(in: 1...48, using: &random))]
        bytes.insert(contentsOf: slice, at: position(inHeader: true))
    case 9:
        bytes[position(inHeader: true)] = UInt8.random(in: 0...255, using: &random)
    default:
        // Data bytes: any value is valid, so this keeps the file readable and exercises value decoding.
        if headerEnd < bytes.count { bytes[Int.random(in: headerEnd..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random) }
    }
}

/// Parses `bytes` and, when that succeeds, touches every tensor's bytes and values.
/// Returns whether the file was accepted; records an issue for any error that is not a `SafeTensorsError`.
private func exercise(_ bytes: [UInt8]) -> Bool {
    do {
        let file = try SafeTensorsFile(bytes: bytes)
        for info in file.tensorInfos {
            let raw = try file.raw(info.name)
            #expect(raw.byteOffset + raw.byteCount <= file.fileSize)
            #expect(raw.byteCount == info.byteCount)
            _ = raw.withUnsafeBytes { $0.reduce(0) { $0 &+ Int($1) } }
            if info.dtype.coreDType != nil {
                #expect(try file.tensor(info.name).doubles().count == info.elementCount)
            }
        }
        return true
    } catch is SafeTensorsError {
        return false
    } catch {
        Issue.record("unexpected error type: \(error)")
        return false
    }
}

@Test func mutatedFilesAreEitherReadOrRejectedWithATypedError() throws {
    let seeds = try seedFiles()
    for seed in seeds { #expect(exercise(seed)) }
    var random = SeededGenerator(seed: 0x5AFE_7E45)
    var accepted = 0
    let iterations = 12_000
    for _ in 0..<iterations {
        var bytes = seeds.randomElement(using: &random)!
        for _ in 0..<Int.random(in: 1...3, using: &random) { mutate(&bytes, using: &random) }
        if exercise(bytes) { accepted += 1 }
    }
    // Both outcomes must be common, or the mutations are not exploring the format.
    #expect(accepted > iterations / 100)
    #expect(accepted < iterations - iterations / 10)
}
