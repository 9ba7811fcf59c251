import Foundation
import Testing
import Models
import NunchakuCore
import SafeTensors
@testable import Pipelines

/// The tiny FLUX pipeline of scripts/parity/flux_pipeline_reference.py, rebuilt on disk: configs from the fixture's
/// metadata, the synthetic tokenizers as the trainer wrote them, and every weight regenerated from its seed.
struct TinyFluxPipeline {
    let reference: SafeTensorsFile
    let folder: String
    let configuration: FluxPipeline.Configuration

    init() throws {
        reference = try SafeTensorsFile(path: FixtureFiles.path("pipeline-tiny.safetensors"))
        let metadata = reference.metadata ?? [:]
        guard let configsText = metadata["configs"], let weightsText = metadata["weights"], let seed = metadata["seed"],
              let settingsText = metadata["settings"],
              let configs = try JSONSerialization.jsonObject(with: Data(configsText.utf8)) as? [String: String],
              let weights = try JSONSerialization.jsonObject(with: Data(weightsText.utf8)) as? [String: Any],
              let settings = try JSONSerialization.jsonObject(with: Data(settingsText.utf8)) as? [String: Any]
        else { throw NunchakuError.invalidArgument(context: "pipeline-tiny", reason: "metadata lacks configs/weights/seed/settings") }
        folder = try makeTemporaryFolder()
        let files = ["model_index": "model_index.json", "scheduler": "scheduler/scheduler_config.json",
                     "text_encoder": "text_encoder/config.json", "text_encoder_2": "text_encoder_2/config.json",
                     "transformer": "transformer/config.json", "vae": "vae/config.json"]
        for (key, path) in files {
            try Self.write(Data((configs[key] ?? "").utf8), to: "\(folder)/\(path)")
        }
        for (family, component) in [("clip", "tokenizer"), ("t5", "tokenizer_2")] {
            for (source, target) in [("original.tokenizer.json", "tokenizer.json"), ("tokenizer_config.json", "tokenizer_config.json")] {
                let data = try Data(contentsOf: URL(fileURLWithPath: FixtureFiles.path("tokenizers/\(family).\(source)")))
                try Self.write(data, to: "\(folder)/\(component)/\(target)")
            }
        }
        let weightFiles = ["text_encoder": "model.safetensors", "text_encoder_2": "model.safetensors",
                           "transformer": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors"]
        for (component, file) in weightFiles {
            let spec = try JSONSerialization.data(withJSONObject: weights[component] ?? [])
            let tensors = try VAEFixture.generatedWeights(metadata: ["weights": String(decoding: spec, as: UTF8.self), "seed": seed])
            var writer = SafeTensorsWriter()
            for name in tensors.keys.sorted() { try writer.add(name, tensors[name]!) }
            try writer.write(to: "\(folder)/\(component)/\(file)")
        }
        configuration = FluxPipeline.Configuration(
            prompts: settings["prompts"] as? [String] ?? [], imagesPerPrompt: settings["images_per_prompt"] as? Int ?? 0,
            steps: settings["steps"] as? Int, guidance: (settings["guidance"] as? NSNumber)?.floatValue,
            width: settings["width"] as? Int ?? 0, height: settings["height"] as? Int ?? 0, seed: UInt64(seed) ?? 0,
            maxSequenceLength: settings["max_sequence_length"] as? Int)
    }

    func tensor(_ name: String) throws -> Tensor { try reference.tensor(name) }

    /// Deletes the folder on disk.
    func remove() {
        try? FileManager.default.removeItem(atPath: folder)
    }

    func load(dtype: DType = .f32) throws -> FluxPipeline {
        try FluxPipelineLoader.load(folder: FluxPipelineFolder(root: folder), options: FluxPipelineLoadOptions(dtype: dtype))
    }

    private static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
    }
}

/// Our pipeline against diffusers' FluxPipeline on the tiny model, fp32 on the CPU, from the same seed and prompts.
struct FluxPipelineParityTests {
    @Test func tokenIDsMatchTransformers() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        let pipeline = try fixture.load()
        let prompts = fixture.configuration.prompts
        let clip = try fixture.tensor("clip_ids").scalars(as: Int64.self).map(Int.init)
        let t5 = try fixture.tensor("t5_ids").scalars(as: Int64.self).map(Int.init)
        #expect(try pipeline.tokenizers.clipIDs(prompts).flatMap { $0 } == clip)
        #expect(try pipeline.tokenizers.t5IDs(prompts, length: fixture.configuration.maxSequenceLength ?? 0).flatMap { $0 } == t5)
    }

    @Test func stagesAndImageMatchDiffusers() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        let output = try fixture.load().generate(fixture.configuration)

        let noise = try fixture.tensor("noise")
        #expect(output.latents.initial.shape == noise.shape)
        #expect(output.latents.initial.floats() == noise.floats(), "seeded noise differs from torch.randn")

        let prompt = try relativeError(output.embeddings.prompt, fixture.tensor("prompt_embeds"))
        let pooled = try relativeError(output.embeddings.pooled, fixture.tensor("pooled_prompt_embeds"))
        let latents = try relativeError(output.latents.final, fixture.tensor("latents"))
        let decoded = try relativeError(output.decoded, fixture.tensor("image"))
        let reference = try fixture.tensor("image_u8").scalars(as: UInt8.self)
        let ours = output.images.flatMap(\.pixels)
        try #require(ours.count == reference.count)
        let psnr = peakSignalToNoiseRatio(ours, reference)
        let differing = zip(ours, reference).filter { $0 != $1 }.count
        print("tiny FLUX pipeline vs diffusers (fp32, CPU): prompt_embeds \(prompt), pooled \(pooled), final latents \(latents), decoded image \(decoded) (max |Δ| / max |ref|); 8-bit image PSNR \(psnr) dB, \(differing) of \(ours.count) bytes differ")
        #expect(prompt <= 1e-4)
        #expect(pooled <= 1e-4)
        #expect(latents <= 1e-3)
        #expect(psnr >= 40)
        #expect(output.images.count == 4 && output.images.allSatisfy { $0.width == 48 && $0.height == 32 })
    }

    /// The whole pipeline in bf16 (diffusers with torch_dtype=bfloat16): the noise is PyTorch 2.15's bf16 randn
    /// bit for bit, and every stage lands about as far from fp32 as diffusers' own bf16 run does.
    @Test func bfloat16StaysAsCloseAsDiffusersBFloat16() throws {
        let fixture = try TinyFluxPipeline()
        defer { fixture.remove() }
        let output = try fixture.load(dtype: .bf16).generate(fixture.configuration)
        #expect(output.latents.initial.dtype == .bf16 && output.latents.final.dtype == .bf16)
        #expect(output.latents.initial.floats() == (try fixture.tensor("noise_bf16").floats()), "bf16 noise differs from torch.randn")
        let stages: [(String, Tensor)] = [("prompt_embeds", output.embeddings.prompt), ("pooled_prompt_embeds", output.embeddings.pooled),
                                          ("latents", output.latents.final), ("image", output.decoded)]
        for (name, ours) in stages {
            let fp32 = try fixture.tensor(name), theirs = try fixture.tensor("\(name)_bf16")
            let oursError = try relativeError(ours, fp32), theirsError = try relativeError(theirs, fp32)
            let between = try relativeError(ours, theirs)
            print("tiny FLUX pipeline bf16, \(name): ours vs fp32 \(oursError), diffusers bf16 vs fp32 \(theirsError), ours vs diffusers bf16 \(between)")
            #expect(oursError <= 1.5 * theirsError + 1e-2, "\(name): ours \(oursError), diffusers \(theirsError)")
            #expect(between <= 6e-2, "\(name): \(between) from diffusers' bf16 run")
        }
    }
}


/// PSNR of two 8-bit images in dB (infinite when they are equal).
func peakSignalToNoiseRatio(_ a: [UInt8], _ b: [UInt8]) -> Double {
    var squared = 0.0
    for (x, y) in zip(a, b) {
        let difference = Double(x) - Double(y)
        squared += difference * difference
    }
    guard squared > 0 else { return .infinity }
    return 10 * log10(255.0 * 255.0 / (squared / Double(a.count)))
}
