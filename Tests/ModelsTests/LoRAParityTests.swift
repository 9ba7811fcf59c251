import Foundation
import Testing
import CPUBackend
import NunchakuCore
@testable import Models

/// LoRAs of every file family against diffusers with the adapter loaded (fixtures by
/// scripts/parity/flux_lora_reference.py), at strengths 1.0 and 0.6, on the small random BF16 FLUX model in fp32;
/// and the same LoRAs on the model in Nunchaku's layout (fused q/k/v, split single-block `proj_out`, interleaved
/// adaLN), where they must give the same output.
struct LoRAParityTests {
    @Test(arguments: LoRAFixture.families)
    func float32MatchesDiffusers(family: String) throws {
        let fixture = try LoRAFixture.shared()
        let model = try fixture.model()
        let base = fixture.baseOutput
        #expect(Comparison.relativeError(base, try fixture.file("sample").floats()) <= 1e-5)
        let lora = try LoRAFile(path: LoRAFixture.path(family))
        let id = try model.loras.add(lora, strength: 1)
        for strength: Float in [1.0, 0.6] {
            try model.loras.setStrength(strength, for: id)
            let expected = try fixture.file("sample_\(family)_\(strength)").floats()
            let output = try fixture.run(model).floats()
            let error = Comparison.relativeError(output, expected)
            let moved = Comparison.relativeError(expected, base)
            print("lora \(family) (\(lora.format)) at \(strength): relative error \(error) against diffusers (the LoRA moves the output by \(moved))")
            #expect(error <= 1e-5, "\(family) at \(strength): relative error \(error)")
            #expect(moved > 1e-2, "\(family): the LoRA should change the output")
        }
        try model.loras.setStrength(0, for: id)
        #expect(try fixture.run(model).floats() == base, "strength 0 must give the base output bit for bit")
        try model.loras.setStrength(0.6, for: id)
        try model.loras.reset()
        #expect(try fixture.run(model).floats() == base, "reset must give the base output bit for bit")
        #expect(model.loras.applied.isEmpty)
    }

    /// The families whose pairs hit fused q/k/v, the split single-block `proj_out` and the interleaved adaLN layers.
    @Test(arguments: ["kohya", "bfl", "peft"])
    func nunchakuLayoutGivesTheSameOutput(family: String) throws {
        let fixture = try LoRAFixture.shared()
        let converted = try FluxNunchakuLayout.convert(diffusers: fixture.weights, config: fixture.config)
        let model = try FluxTransformer(config: fixture.config, weights: converted, layout: .nunchaku, source: "lora base nunchaku")
        try model.loras.add(LoRAFile(path: LoRAFixture.path(family)), strength: 0.6)
        let error = Comparison.relativeError(try fixture.run(model).floats(), try fixture.file("sample_\(family)_0.6").floats())
        print("lora \(family) on the Nunchaku layout at 0.6: relative error \(error) against diffusers")
        #expect(error <= 1e-5, "\(family): relative error \(error)")
    }

    /// Two LoRAs at once add their changes; each strength changes independently, and removing one leaves the other.
    @Test func twoLoRAsCompose() throws {
        let fixture = try LoRAFixture.shared()
        let model = try fixture.model()
        let kohya = try model.loras.add(LoRAFile(path: LoRAFixture.path("kohya")), strength: 0.6)
        let xlabs = try model.loras.add(LoRAFile(path: LoRAFixture.path("xlabs")), strength: 1)
        let both = try fixture.run(model).floats()
        try model.loras.remove(xlabs)
        let error = Comparison.relativeError(try fixture.run(model).floats(), try fixture.file("sample_kohya_0.6").floats())
        #expect(error <= 1e-5, "after removing the second LoRA: relative error \(error)")
        #expect(Comparison.relativeError(both, try fixture.file("sample_kohya_0.6").floats()) > 1e-3, "the second LoRA should count")
        try model.loras.setStrength(1, for: kohya)
        let one = Comparison.relativeError(try fixture.run(model).floats(), try fixture.file("sample_kohya_1.0").floats())
        #expect(one <= 1e-5, "strength changed to 1: relative error \(one)")
    }
}
