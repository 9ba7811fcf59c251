import Foundation
import Nunchaku

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Shows `FluxPipeline` progress on standard error: on a terminal one line per stage, redrawn in place, with a bar,
/// the rate and an ETA; otherwise plain lines, one per report (logs and pipes stay readable).
final class PipelineProgressDisplay {
    private let isTerminal: Bool
    private let enabled: Bool
    private var lineOpen = false

    init(enabled: Bool) {
        self.enabled = enabled
        isTerminal = isatty(STDERR_FILENO) == 1
    }

    /// Shows one report.
    func show(_ progress: FluxPipelineProgress) {
        guard enabled else { return }
        let line = Self.line(progress)
        if isTerminal {
            emit("\r\u{1B}[2K" + line)
            lineOpen = true
            if progress.completed == progress.total { finishLine() }
        } else {
            emit(line + "\n")
        }
    }

    /// Ends a line left open on the terminal (before other output, or when a run stops midway).
    func finishLine() {
        guard lineOpen else { return }
        emit("\n")
        lineOpen = false
    }

    /// `denoising [########------------] 3/8 steps, 1.52 steps/s, ETA 0:03 (step 4/8)`.
    static func line(_ progress: FluxPipelineProgress) -> String {
        let unit = progress.stage == .denoising ? "steps" : "parts"
        var line = "\(progress.stage.rawValue) \(bar(progress.completed, progress.total)) \(progress.completed)/\(progress.total) \(unit)"
        if progress.completed > 0, progress.total > 1, progress.elapsedSeconds > 0 {
            let rate = Double(progress.completed) / progress.elapsedSeconds
            let remaining = Double(progress.total - progress.completed) / rate
            line += ", " + String(format: "%.2f", rate) + " \(unit)/s"
            line += progress.completed < progress.total ? ", ETA \(duration(remaining))" : ""
        }
        if progress.completed == progress.total { line += " in \(duration(progress.elapsedSeconds))" }
        if progress.completed < progress.total { line += " (\(progress.detail))" }
        return line
    }

    /// A 20-character bar.
    static func bar(_ completed: Int, _ total: Int) -> String {
        let filled = total > 0 ? min(20, 20 * completed / total) : 20
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: 20 - filled) + "]"
    }

    /// `m:ss`, or `h:mm:ss` from an hour on.
    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        let (hours, minutes, secs) = (total / 3600, total / 60 % 60, total % 60)
        return hours > 0 ? String(format: "%d:%02d:%02d", hours, minutes, secs) : String(format: "%d:%02d", minutes, secs)
    }

    private func emit(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}

/// Ctrl-C during a run: the first press asks the pipeline to stop after its current unit of work (so nothing is
/// half-written), a second press ends the process at once.
enum InterruptRequest {
    nonisolated(unsafe) private static var requested: sig_atomic_t = 0

    /// Installs the SIGINT handler.
    static func install() {
        signal(SIGINT) { _ in
            if InterruptRequest.requested != 0 { _exit(130) }
            InterruptRequest.requested = 1
        }
    }

    /// Whether Ctrl-C was pressed.
    static var isRequested: Bool { requested != 0 }
}
