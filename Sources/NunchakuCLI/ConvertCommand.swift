import ArgumentParser
import Foundation
import Nunchaku

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `nunchaku convert IN OUT --to FORMAT`: rewrites an SVDQuant checkpoint in another layout.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert an SVDQuant checkpoint between Nunchaku, canonical, Nunchaku-Lite and dense forms.",
        discussion: """
            IN is any SVDQuant checkpoint: a Nunchaku merged .safetensors file, a Nunchaku legacy folder \
            (transformer_blocks + unquantized_layers + config.json), a diffusers Nunchaku-Lite folder, or a \
            canonical file. C++- and Python-named files are both read.

            Targets: "nunchaku" writes one merged .safetensors file as Nunchaku does (C++ names for FLUX); \
            "canonical" this engine's row-major layout (one .safetensors file); "nunchaku-lite" a folder with \
            config.json and diffusion_pytorch_model.safetensors (Python names); "dense" every quantized layer \
            dequantized to a dense weight, which is LOSSY (for hardware without 4-bit support and for inspection).

            The first three move the same bits: converting back gives the same tensors (Nunchaku-Lite has no \
            smooth_orig, and the report says what was filled in or dropped). Every non-quantized tensor is copied \
            unchanged. Layers are converted one at a time through a scratch file beside OUT, so memory holds one \
            layer while the disk briefly needs about twice the output's size.
            """
    )

    @Argument(help: "The checkpoint to convert (file or folder).")
    var input: String

    @Argument(help: "Where to write: a .safetensors file, or a folder for --to nunchaku-lite.")
    var output: String

    @Option(name: .customLong("to"), help: "nunchaku, canonical, nunchaku-lite or dense.")
    var target: String

    @Option(name: .customLong("dense-dtype"), help: "The dtype of dequantized weights for --to dense: bf16, f16 or f32.")
    var denseDType = "bf16"

    @Flag(help: "Print no progress on standard error.")
    var quiet = false

    /// Inputs from this size up report progress on standard error.
    private static let progressThreshold = 64 << 20

    func run() throws {
        try reportingFailure(of: "convert") {
            guard let format = SVDQuantTargetFormat(rawValue: target) else {
                throw ValidationError("--to must be one of \(SVDQuantTargetFormat.allCases.map(\.rawValue).joined(separator: ", ")), not \(target)")
            }
            guard let dtype = DType(rawValue: denseDType), [.bf16, .f16, .f32].contains(dtype) else {
                throw ValidationError("--dense-dtype must be bf16, f16 or f32, not \(denseDType)")
            }
            let checkpoint = try SVDQuantCheckpoint(path: input)
            let inputBytes = try checkpoint.source.files().reduce(0) { $0 + $1.fileSize }
            let progress = ProgressLine(enabled: !quiet && inputBytes >= Self.progressThreshold)
            let report = try SVDQuantConverter.convert(
                checkpoint, to: format, output: output, denseDType: dtype, progress: progress.update)
            progress.finish()
            let precision = checkpoint.precision.map { "\($0), rank \(checkpoint.rank ?? 0)" } ?? "no W4A4 layers"
            print("""
                \(checkpoint.container.rawValue) (\(precision)) → \(format.rawValue): \(report.w4a4Layers) W4A4 + \
                \(report.awqLayers) AWQ layers, \(report.denseTensors) other tensors; \(report.tensorCount) tensors, \
                \(formatBytes(report.tensorBytes))
                """)
            for file in report.files { print("  wrote \(file)") }
            for note in report.notes { printError("note: \(note)") }
        }
    }
}

/// Progress on standard error: one line per tenth of the layers, and the final write.
private final class ProgressLine: @unchecked Sendable {
    private let enabled: Bool
    private var lastTenth = -1

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ progress: SVDQuantConversionProgress) {
        guard enabled else { return }
        switch progress.stage {
        case let .converting(layer):
            let tenth = progress.layerCount == 0 ? 10 : 10 * progress.layersDone / progress.layerCount
            guard tenth > lastTenth else { return }
            lastTenth = tenth
            printError("converting layer \(progress.layersDone + 1)/\(progress.layerCount): \(layer)")
        case let .writing(bytes):
            printError("writing \(formatBytes(bytes))")
        }
    }

    func finish() {
        if enabled { printError("done") }
    }
}

private func printError(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

private func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes), unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.2f", value) + " " + units[unit]
}
