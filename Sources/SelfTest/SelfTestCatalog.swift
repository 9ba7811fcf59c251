/// Every self-test case, in the order `nunchaku selftest` runs them.
///
/// Each group of kernels keeps its cases in its own file under `Cases/` as a static `cases` array; adding a group
/// is one line here.
public enum SelfTestCatalog {
    public static let cases: [SelfTestCase] =
        NormalizationSelfTests.cases
        + ElementwiseSelfTests.cases
        + RotarySelfTests.cases
        + QKVHeadsSelfTests.cases
        + TokenCopySelfTests.cases
        + AttentionSelfTests.cases
        + AttentionFP8SelfTests.cases
        + AttentionFP8CodesSelfTests.cases
        + AttentionFP8HeadsSelfTests.cases
        + GEMMSelfTests.cases
        + W4A4SelfTests.cases
        + W4A4FastSelfTests.cases
        + W4A4FastSharedInputSelfTests.cases
        + NormQuantizeSelfTests.cases
        + AWQSelfTests.cases
        + FluxSelfTests.cases
        + FluxGraphSelfTests.cases
        + FluxPrefetchSelfTests.cases
        + FluxSideStreamSelfTests.cases
        + FluxAttentionCodesSelfTests.cases
        + FluxLoopSelfTests.cases
        + TextEncoderSelfTests.cases
        + VAESelfTests.cases
        + LoRASelfTests.cases

    /// The cases any of `filters` selects (all of them when `filters` is empty).
    public static func selecting(_ filters: [String]) -> [SelfTestCase] {
        filters.isEmpty ? cases : cases.filter { testCase in filters.contains { testCase.matches($0) } }
    }
}
