import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Nunchaku

/// `nunchaku selftest`: every GPU kernel against the CPU reference on fresh random inputs.
struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check every GPU kernel against the CPU reference on fresh random inputs.",
        discussion: """
        Each case draws new random inputs (never zeros), poisons its outputs, runs the kernel, and compares the \
        result with the CPU reference by ‖gpu − cpu‖/‖cpu‖ against the tolerance printed in the table. A case fails \
        when the error is above its tolerance, when any output element was not written or is NaN, or when the op \
        throws. For large shapes the CPU reference covers a random subset of rows (always the first and the last); \
        the GPU still computes, and the check still covers, every element. Timed columns are the median of 10 \
        launches after warm-up, from device events.

        The CPU is the reference, so there is nothing to check without a GPU: --device cpu, or no usable GPU, exits \
        with status 1 and says why. Exit status 1 as well when any case fails or no case matches --filter.

        Examples:
          nunchaku selftest                       every case on GPU 0
          nunchaku selftest --filter attention    the attention cases
          nunchaku selftest --filter "gemm bf16" --filter rmsnorm
          nunchaku selftest --list                the cases, without running them
        """)

    @Option(help: "cuda, cuda:N (GPU N among the visible ones) or cpu.")
    var device = "cuda"

    @Option(name: .customLong("filter"),
            help: "Run only cases whose name contains every word of this text (case-insensitive); repeat for more.")
    var filters: [String] = []

    @Option(help: "Base seed (a case's inputs derive from it and the case's name); random when omitted.")
    var seed: UInt64?

    @Option(name: .customLong("json"), help: "Also write the report as JSON to this file.")
    var jsonPath: String?

    @Flag(help: "List the selected cases and exit.")
    var list = false

    func run() throws {
        let cases = SelfTestCatalog.selecting(filters)
        guard !cases.isEmpty else {
            try fail("no case matches --filter \(filters.joined(separator: ", ")); see --list")
        }
        if list {
            for testCase in cases { print(testCase.name) }
            return
        }
        let deviceIndex = try parseDevice()
        let context: CUDAContext
        do {
            context = try CUDAContext(deviceIndex: deviceIndex)
        } catch {
            try fail("needs a CUDA GPU to check against the CPU: \(error)")
        }
        print("nunchaku selftest: \(cases.count) cases on \(context.device.name) (\(context.device.computeCapability))")
        print(SelfTestTable.header())
        flush()
        let report = SelfTestRunner(context: context, seed: seed).run(cases) { result in
            print(SelfTestTable.row(result))
            flush()
        }
        print(SelfTestTable.summary(report))
        if let jsonPath {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: jsonPath))
        }
        if !report.succeeded { throw ExitCode.failure }
    }

    /// The GPU index `--device` names.
    private func parseDevice() throws -> Int {
        if device == "cpu" {
            try fail("the CPU is the reference the GPU kernels are checked against; there is nothing to check with --device cpu")
        }
        if device == "cuda" { return 0 }
        if device.hasPrefix("cuda:"), let index = Int(device.dropFirst(5)), index >= 0 { return index }
        try fail("--device must be cuda, cuda:N or cpu, got \(device)")
    }

    private func fail(_ message: String) throws -> Never {
        let line = Array("nunchaku selftest: \(message)\n".utf8)
        _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        throw ExitCode.failure
    }

    /// Flushes standard output (all C streams), so rows appear as cases finish even through a pipe.
    private func flush() { fflush(nil) }
}
