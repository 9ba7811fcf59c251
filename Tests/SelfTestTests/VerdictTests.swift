import NunchakuCore
@testable import SelfTest
import Testing

@Suite struct VerdictTests {
    static let testCase = SelfTestCase(kernel: "demo", dtype: .bf16, shape: "[2]", tolerance: 1e-2) { _ in
        SelfTestOutcome(comparison: SelfTestComparison())
    }

    static func comparison(_ values: [Float], _ reference: [Float]) throws -> SelfTestComparison {
        var comparison = SelfTestComparison()
        try comparison.compare(try SelfTestOutput(Tensor(values, shape: [values.count])), with: reference)
        return comparison
    }

    static func judge(_ comparison: SelfTestComparison) -> SelfTestResult {
        SelfTestResult(testCase: testCase, outcome: SelfTestOutcome(comparison: comparison, milliseconds: 2, flops: 4e9),
                       seconds: 0.1, seed: 9)
    }

    @Test func withinToleranceRunsPass() throws {
        let result = Self.judge(try Self.comparison([1, 2.01], [1, 2]))
        #expect(result.status == .passed)
        #expect(result.teraflopsPerSecond == 2)  // 4e9 operations in 2 ms
        #expect(result.name == "demo bf16 [2]")
    }

    @Test func aboveToleranceFails() throws {
        let result = Self.judge(try Self.comparison([1, 2.5], [1, 2]))
        #expect(result.status == .failed)
        #expect(result.message?.contains("exceeds") == true)
    }

    @Test func unwrittenNaNOrEmptyOutputsFail() throws {
        var poisoned = Tensor(zeros: [2], dtype: .f32)
        poisoned.withUnsafeMutableBytes { $0.storeBytes(of: SelfTestPoison.word, toByteOffset: 0, as: UInt32.self) }
        var unwritten = SelfTestComparison()
        try unwritten.compare(try SelfTestOutput(poisoned), with: [1, 1])
        #expect(Self.judge(unwritten).message?.contains("not written") == true)

        let nan = Self.judge(try Self.comparison([.nan, 1], [1, 1]))
        #expect(nan.status == .failed && nan.message?.contains("NaN") == true)

        let empty = Self.judge(SelfTestComparison())
        #expect(empty.status == .failed && empty.message?.contains("nothing was compared") == true)
    }

    @Test func thrownErrorsFailAndSkipsSkip() {
        let failed = SelfTestResult(testCase: Self.testCase, error: NunchakuError.unsupported(context: "op", reason: "no\nkernel"),
                                    seconds: 0, seed: 0)
        #expect(failed.status == .failed && failed.message == "op: no kernel")
        let skipped = SelfTestResult(testCase: Self.testCase, error: SelfTestSkip("cuBLASLt missing"), seconds: 0, seed: 0)
        #expect(skipped.status == .skipped && skipped.message == "cuBLASLt missing")
    }

    @Test func aReportSucceedsOnlyWithoutFailuresAndWithSomethingRun() throws {
        let pass = Self.judge(try Self.comparison([1], [1]))
        let fail = Self.judge(try Self.comparison([2], [1]))
        let skip = SelfTestResult(testCase: Self.testCase, error: SelfTestSkip("x"), seconds: 0, seed: 0)
        #expect(SelfTestReport(device: "d", baseSeed: 1, results: [pass, skip], seconds: 1).succeeded)
        #expect(!SelfTestReport(device: "d", baseSeed: 1, results: [pass, fail], seconds: 1).succeeded)
        #expect(!SelfTestReport(device: "d", baseSeed: 1, results: [skip], seconds: 1).succeeded)
        let table = SelfTestTable.render(SelfTestReport(device: "GPU", baseSeed: 1, results: [pass, fail, skip], seconds: 1.25))
        #expect(table.contains("FAIL") && table.contains("skip") && table.contains("\nok "))
        #expect(table.hasSuffix("1 passed, 1 failed, 1 skipped of 3 cases in 1.3 s on GPU (seed 1)"))
    }

    @Test func numbersAreFormattedForTheTable() {
        #expect(SelfTestTable.scientific(1.234e-3) == "1.23e-03")
        #expect(SelfTestTable.scientific(9.996e-3) == "1.00e-02")
        #expect(SelfTestTable.scientific(0) == "0")
        #expect(SelfTestTable.scientific(250) == "2.50e+02")
        #expect(SelfTestTable.scientific(.infinity) == "inf" && SelfTestTable.scientific(.nan) == "nan")
        #expect(SelfTestTable.fixed(3.14159, digits: 3) == "3.142")
        #expect(SelfTestTable.fixed(-0.05, digits: 1) == "-0.1")
        #expect(SelfTestTable.fixed(2, digits: 0) == "2")
        #expect(SelfTestTable.fixed(0.999, digits: 2) == "1.00")
    }
}
