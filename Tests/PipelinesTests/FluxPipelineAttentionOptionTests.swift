@testable import Pipelines
import Testing

/// The attention precision option of pipeline loading: fp8 attention is GPU-only.
@Suite struct FluxPipelineAttentionOptionTests {
    @Test func fp8AttentionOnTheCPUIsRefusedByName() throws {
        #expect(FluxPipelineLoadOptions().attention == .bf16)
        try FluxPipelineLoader.checkDevice(FluxPipelineLoadOptions(device: .cpu, attention: .bf16))
        let error = try #require(throws: FluxPipelineError.self) {
            try FluxPipelineLoader.checkDevice(FluxPipelineLoadOptions(device: .cpu, attention: .fp8))
        }
        guard case let .invalidSetting(setting, reason) = error else {
            Issue.record("expected invalidSetting, got \(error)")
            return
        }
        #expect(setting == "attention" && reason.contains("GPU only"))
    }
}
