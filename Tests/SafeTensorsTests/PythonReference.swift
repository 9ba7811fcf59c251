import Foundation
import NunchakuCore
import SafeTensors

/// Python with numpy and the reference `safetensors` library (≥ 0.8, which has `TensorSpec`), used as
/// an independent writer and reader. Set `NUNCHAKU_PYTHON` to pick an interpreter (default `python3`).
enum PythonReference {
    static let interpreter = Environment.value("NUNCHAKU_PYTHON") ?? "python3"

    /// Whether the interpreter runs and imports what the interop scripts need.
    static let isUsable: Bool = {
        let check = "import numpy, safetensors; assert hasattr(safetensors, 'TensorSpec')"
        return (try? run(check, arguments: []).status) == 0
    }()

    /// Under CI (`NUNCHAKU_CI` set) the interop tests must run, and fail when Python is missing.
    static let isRequired = Environment.value("NUNCHAKU_CI") != nil

    /// Runs `script` with `arguments`, returning the exit status and everything it printed.
    static func run(_ script: String, arguments: [String]) throws -> (status: Int32, output: String) {
        let folder = try TemporaryFolder()
        let logPath = folder.file("output.log")
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
            throw SafeTensorsError.io(path: logPath, reason: "cannot create the log file")
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [interpreter, "-c", script] + arguments
        process.standardOutput = log
        process.standardError = log
        try process.run()
        process.waitUntilExit()
        try log.close()
        return (process.terminationStatus, String(decoding: try FileContents.read(logPath), as: UTF8.self))
    }

    /// Runs `script`, requiring success, and parses the JSON it writes to the file named by its last argument.
    static func runReturningJSON(_ script: String, arguments: [String]) throws -> JSONValue {
        let folder = try TemporaryFolder()
        let resultPath = folder.file("result.json")
        let (status, output) = try run(script, arguments: arguments + [resultPath])
        guard status == 0 else {
            throw NunchakuError.invalidArgument(context: "python", reason: "exited with status \(status): \(output)")
        }
        return try JSONValue.parse(FileContents.read(resultPath))
    }
}

/// Bytes from lowercase hexadecimal text.
func bytes(fromHex text: String) -> [UInt8] {
    let digits = Array(text.utf8)
    return stride(from: 0, to: digits.count - 1, by: 2).map { index in
        let pair = String(decoding: digits[index...(index + 1)], as: UTF8.self)
        return UInt8(pair, radix: 16) ?? 0
    }
}

/// Numbers printed by Python's `repr(float(x))` ("1.5", "nan", "-inf").
func doubles(fromReprs value: JSONValue?) -> [Double]? {
    value?.arrayElements?.map { Double($0.stringValue ?? "") ?? .signalingNaN }
}

/// Equal element by element, NaN matching NaN.
func sameValues(_ left: [Double], _ right: [Double]) -> Bool {
    left.count == right.count && zip(left, right).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
}
