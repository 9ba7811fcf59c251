import CUDABackend
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Runs self-test cases one after another on one GPU.
public struct SelfTestRunner {
    public let context: CUDAContext
    /// The run's seed; each case's seed derives from it and the case's name.
    public let baseSeed: UInt64

    /// A runner on `context`; a nil `seed` draws a fresh one, so every run sees new inputs.
    public init(context: CUDAContext, seed: UInt64? = nil) {
        self.context = context
        baseSeed = seed ?? UInt64.random(in: 0...UInt64.max)
    }

    /// Runs `cases` in order, calling `progress` after each, and returns the report. A case that throws fails
    /// (or is skipped, for `SelfTestSkip`); the run goes on either way.
    public func run(_ cases: [SelfTestCase], progress: (SelfTestResult) -> Void = { _ in }) -> SelfTestReport {
        let session = SelfTestSession()
        let runStart = Date()
        var results: [SelfTestResult] = []
        for testCase in cases {
            let seed = SelfTestRandom.seed(for: testCase.name, base: baseSeed)
            let environment = SelfTestEnvironment(context: context, seed: seed, session: session)
            let start = Date()
            let result: SelfTestResult
            do {
                let outcome = try testCase.body(environment)
                result = SelfTestResult(testCase: testCase, outcome: outcome, seconds: Date().timeIntervalSince(start), seed: seed)
            } catch {
                // Let a failing case not poison the next one: wait for queued work (its error, if asynchronous,
                // is already in the message or will be reported by the next synchronisation).
                _ = try? context.defaultStream.synchronize()
                result = SelfTestResult(testCase: testCase, error: error, seconds: Date().timeIntervalSince(start), seed: seed)
            }
            results.append(result)
            progress(result)
        }
        let device = "\(context.device.name) (\(context.device.computeCapability))"
        return SelfTestReport(device: device, baseSeed: baseSeed, results: results, seconds: Date().timeIntervalSince(runStart))
    }
}
