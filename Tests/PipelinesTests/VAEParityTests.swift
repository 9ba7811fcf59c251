import Foundation
import Testing
import CPUBackend
import NunchakuCore
import SafeTensors
@testable import Pipelines

/// The AutoencoderKL decoder against diffusers on small random-weight VAEs (fixtures made by
/// scripts/parity/vae_reference.py): `flux` (16 latent channels, no post_quant_conv, shift factor, channel changes in
/// two up blocks) and `sd` (post_quant_conv, 4 latent channels, three resnets per up block).
struct VAEParityTests {
    @Test(arguments: ["flux", "sd"])
    func float32MatchesDiffusers(variant: String) throws {
        let fixture = try VAEFixture(variant: variant)
        let decoder = try AutoencoderKLDecoder(config: fixture.config, weights: fixture.weights, source: "vae-\(variant)")
        let clock = ContinuousClock()
        var image = Tensor(zeros: [0], dtype: .f32)
        let elapsed = try clock.measure { image = try decoder.decode(diffusionLatents: fixture.tensor("latents")) }
        let expected = try fixture.tensor("image")
        #expect(image.shape == expected.shape)
        #expect(image.dtype == .f32)
        let error = try Comparison.relativeError(image, expected)
        print("vae-\(variant) f32: relative error \(error) against diffusers fp32; decode \(elapsed)")
        #expect(error <= 1e-4, "\(variant): relative error \(error) against diffusers fp32")
    }

    /// bf16 rounds every op output: it lands about as far from fp32 as diffusers' bf16 run, and near that run.
    @Test(arguments: ["flux", "sd"])
    func bfloat16StaysAsCloseAsDiffusersBFloat16(variant: String) throws {
        let fixture = try VAEFixture(variant: variant)
        let decoder = try AutoencoderKLDecoder(config: fixture.config, weights: fixture.weights, computeDType: .bf16)
        let image = try decoder.decode(diffusionLatents: fixture.tensor("latents"))
        #expect(image.dtype == .bf16)
        let reference = try fixture.tensor("image").floats(), diffusersBF16 = try fixture.tensor("image_bf16").floats()
        let ours = Comparison.relativeError(image.floats(), reference)
        let theirs = Comparison.relativeError(diffusersBF16, reference)
        let between = Comparison.relativeError(image.floats(), diffusersBF16)
        print("vae-\(variant) bf16: ours vs fp32 \(ours), diffusers bf16 vs fp32 \(theirs), ours vs diffusers bf16 \(between)")
        #expect(ours <= 1.5 * theirs + 5e-3, "\(variant): bf16 relative error \(ours), diffusers bf16 has \(theirs)")
        #expect(between <= 3e-2, "\(variant): bf16 relative error \(between) against diffusers bf16")
        #expect(ours > 1e-4, "\(variant): a bf16 run should differ from fp32")
    }

    /// The same checkpoint saved with legacy attention names (`query`/`key`/`value`/`proj_attn`, the projections as
    /// 1×1 convolutions) and with encoder tensors beside the decoder's decodes identically.
    @Test func legacyAttentionNamesAndEncoderTensorsAreAccepted() throws {
        let fixture = try VAEFixture(variant: "flux")
        var legacy = [String: Tensor]()
        let renames = ["to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"]
        for (name, tensor) in fixture.weights {
            var renamed = name, stored = tensor
            for (current, old) in renames where name.contains(".attentions.0.\(current).") {
                renamed = name.replacingOccurrences(of: ".\(current).", with: ".\(old).")
                if tensor.rank == 2 { stored = try tensor.reshaped(tensor.shape + [1, 1]) }
            }
            legacy[renamed] = stored
        }
        #expect(legacy["decoder.mid_block.attentions.0.proj_attn.weight"]?.shape == [32, 32, 1, 1])
        legacy["encoder.conv_in.weight"] = Tensor(zeros: [8, 3, 3, 3], dtype: .f32)
        legacy["quant_conv.bias"] = Tensor(zeros: [32], dtype: .f32)
        let latents = try fixture.tensor("latents")
        let expected = try AutoencoderKLDecoder(config: fixture.config, weights: fixture.weights).decode(diffusionLatents: latents)
        let decoded = try AutoencoderKLDecoder(config: fixture.config, weights: legacy).decode(diffusionLatents: latents)
        #expect(decoded.floats() == expected.floats())
    }
}

/// A committed VAE fixture and the decoder weights its metadata describes, regenerated bit for bit.
struct VAEFixture {
    let config: VAEConfig
    let weights: [String: Tensor]
    private let file: SafeTensorsFile

    init(variant: String) throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        file = try SafeTensorsFile(path: folder.appendingPathComponent("vae-\(variant).safetensors").path)
        let metadata = file.metadata ?? [:]
        guard let configText = metadata["config"] else {
            throw NunchakuError.invalidArgument(context: "vae-\(variant)", reason: "no config metadata")
        }
        config = try VAEConfig.decode(Data(configText.utf8), source: "vae-\(variant) config")
        weights = try VAEFixture.generatedWeights(metadata: metadata)
    }

    func tensor(_ name: String) throws -> Tensor { try file.tensor(name) }

    /// The weights of scripts/parity/vae_reference.py: element i of tensor `name` is
    /// `Float(offset + scale · (u/2²³ − 1))` with `u = splitmix64(fnv1a64(name) ^ seed, i) >> 40`.
    static func generatedWeights(metadata: [String: String]) throws -> [String: Tensor] {
        guard let specText = metadata["weights"], let seed = metadata["seed"].flatMap(UInt64.init),
              let spec = try JSONSerialization.jsonObject(with: Data(specText.utf8)) as? [[Any]]
        else { throw NunchakuError.invalidArgument(context: "fixture metadata", reason: "no weights/seed entries") }
        var weights = [String: Tensor]()
        for entry in spec {
            guard entry.count == 4, let name = entry[0] as? String, let shape = entry[1] as? [Int],
                  let offset = (entry[2] as? NSNumber)?.doubleValue, let scale = (entry[3] as? NSNumber)?.doubleValue
            else { throw NunchakuError.invalidArgument(context: "fixture metadata", reason: "bad weights entry \(entry)") }
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325
            for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
            let state = hash ^ seed
            let values = (0..<shape.reduce(1, *)).map { index -> Float in
                let u = Double(SplitMix64.mix(state &+ UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15) >> 40)
                return Float(offset + scale * (u / 8_388_608 - 1))
            }
            weights[name] = Tensor(values, shape: shape)
        }
        return weights
    }
}
