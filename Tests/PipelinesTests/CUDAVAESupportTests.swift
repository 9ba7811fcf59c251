import NunchakuCore
import Pipelines
import Testing

/// Which VAEs the GPU decoder takes: the FLUX.1 VAE yes; one channel per GroupNorm group (the built-in demo
/// model's first block) no, with a reason naming the width — the pipeline then decodes on the CPU.
@Suite struct CUDAVAESupportTests {
    private func config(widths: [Int], groups: Int) -> VAEConfig {
        VAEConfig(latentChannels: 16, blockOutChannels: widths, normNumGroups: groups,
                  upBlockTypes: Array(repeating: "UpDecoderBlock2D", count: widths.count))
    }

    @Test func fluxVAEIsSupported() {
        #expect(CUDAAutoencoderKLDecoder.unsupportedReason(config(widths: [128, 256, 512, 512], groups: 32)) == nil)
    }

    @Test func oneChannelPerGroupIsRefusedByWidth() throws {
        let reason = try #require(CUDAAutoencoderKLDecoder.unsupportedReason(config(widths: [32, 64, 128, 128], groups: 32)))
        #expect(reason.contains("block width 32 with 32 groups"))
        #expect(CUDAAutoencoderKLDecoder.unsupportedReason(config(widths: [64, 64], groups: 256)) != nil)
        #expect(CUDAAutoencoderKLDecoder.unsupportedReason(config(widths: [36, 72], groups: 6)) != nil)
    }
}
