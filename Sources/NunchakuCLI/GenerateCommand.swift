import ArgumentParser
import Foundation
import Nunchaku

/// `nunchaku generate`: FLUX.1 text-to-image, prompt in, PNG out.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate images from a prompt with a FLUX.1 pipeline.",
        discussion: """
            --model is a diffusers FLUX pipeline folder (model_index.json, scheduler/, tokenizer/, tokenizer_2/, \
            text_encoder/, text_encoder_2/, transformer/, vae/) or a Hub repo id such as \
            black-forest-labs/FLUX.1-schnell already in the local Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub, \
            ~/.cache/huggingface/hub); nothing is downloaded. --transformer replaces its transformer, e.g. with a \
            Nunchaku SVDQuant file (svdq-int4_r32-flux.1-schnell.safetensors); transformer/ may then be absent. \
            Without --model the built-in flux-shapes demo model is used (docs/demo.md: $NUNCHAKU_DEMO_MODEL, else \
            models/flux-shapes of this repository) with its SVDQuant INT4 transformer, at 128×128.

            Defaults follow the model (told apart by the transformer's guidance_embeds): FLUX.1-dev 28 steps, \
            guidance 3.5, 512 T5 tokens; FLUX.1-schnell 4 steps, no guidance, 256 T5 tokens. The seed drives \
            PyTorch's CPU generator, so a seed gives the same initial noise as diffusers with \
            torch.Generator("cpu").manual_seed(seed).

            Several --prompt options make one batch; --batch N makes N images per prompt. One image is written to \
            --output; more go to out-1.png, out-2.png, … Each PNG carries the prompt, seed and settings as text \
            chunks. Ctrl-C stops after the current step and writes nothing (press it twice to quit at once).

            --device cuda runs every model on GPU 0 in bf16: the transformer (SVDQuant layers on the 4-bit kernels; \
            --numerics fast runs INT4 and NVFP4 layers on the Hopper FP8 path, sm_90+), CLIP, T5 and the VAE decoder. \
            --text-encoder-2 replaces T5 with Nunchaku's 4-bit T5 (awq-int4-flux.1-t5xxl.safetensors; text_encoder_2/ \
            may then be absent): 4-bit on the GPU, dequantized to bf16 on the CPU. --dtype f32 (CPU only) computes \
            everything in fp32, as the parity tests do.
            """
    )

    enum Device: String, ExpressibleByArgument, CaseIterable { case cpu, cuda }
    enum ComputeType: String, ExpressibleByArgument, CaseIterable { case f32, bf16 }

    @Option(help: "A FLUX pipeline folder or a Hub repo id in the local Hugging Face cache (default: the built-in flux-shapes demo model with its SVDQuant INT4 transformer, 128×128).")
    var model: String?

    @Option(help: "The prompt; repeat for several prompts in one batch.")
    var prompt: [String] = []

    @Option(help: "Denoising steps (default: 28 for dev, 4 for schnell).")
    var steps: Int?

    @Option(help: "Guidance scale for guidance-distilled models (default 3.5); not for schnell.")
    var guidance: Float?

    @Option(help: "Image width in pixels, a multiple of 16 (default 1024; 128 for the demo model).")
    var width: Int?

    @Option(help: "Image height in pixels, a multiple of 16 (default 1024; 128 for the demo model).")
    var height: Int?

    @Option(help: "Seed of the initial noise (default: a random one, printed and stored in the PNG).")
    var seed: UInt64?

    @Option(help: "Images per prompt.")
    var batch = 1

    @Option(help: "T5 tokens per prompt, 1…512 (default: 512 for dev, 256 for schnell).")
    var maxSequenceLength: Int?

    @Option(help: "Where to write the image (several images: NAME-1.png, NAME-2.png, …).")
    var output = "out.png"

    @Option(help: "A transformer replacing the pipeline's: SVDQuant file or folder, or any FLUX transformer checkpoint.")
    var transformer: String?

    @Option(name: .customLong("text-encoder-2"), help: "Nunchaku's 4-bit T5 file (awq-int4-flux.1-t5xxl.safetensors) replacing text_encoder_2/.")
    var textEncoder2: String?

    @Option(help: "Where the models run: cpu or cuda (GPU 0).")
    var device: Device = .cpu

    @Option(help: "With --device cuda: exact (Nunchaku's W4A4 numerics) or fast (FP8 on sm_90+, INT4 checkpoints).")
    var numerics: W4A4Numerics = .exact

    @Option(name: .customLong("lora"), help: "A LoRA file to apply to the transformer, FILE or FILE:STRENGTH (default 1); repeatable.")
    var loras: [LoRAArgument] = []

    @Option(help: "Compute dtype of every stage: bf16 (default) or f32 (CPU only).")
    var dtype: ComputeType = .bf16

    @Option(help: "Also write the stage tensors (prompt_embeds, pooled_prompt_embeds, noise, latents, image) to this .safetensors file.")
    var saveTensors: String?

    @Flag(help: "Print no progress on standard error.")
    var quiet = false

    @Option(help: "With --numerics fast: where \(FP8Accumulation.optionHelp).")
    var fp8Accumulation: FP8Accumulation?

    @Option(help: "With --device cuda: attention operands bf16 (the default) or fp8 (e4m3, sm_90a).")
    var attention: AttentionPrecision = .bf16

    func validate() throws {
        guard !prompt.isEmpty else { throw ValidationError("give a --prompt") }
        if device == .cpu, attention == .fp8 { throw ValidationError("--attention fp8 is for --device cuda runs") }
        if device == .cuda, dtype == .f32 { throw ValidationError("--device cuda computes in bf16; drop --dtype f32") }
        if device == .cpu, numerics == .fast { throw ValidationError("--numerics fast is for --device cuda runs") }
        if numerics != .fast, fp8Accumulation != nil { throw ValidationError("--fp8-accumulation is for --numerics fast runs") }
    }

    func run() throws {
        InterruptRequest.install()
        let display = PipelineProgressDisplay(enabled: !quiet)
        let handler: FluxPipelineProgressHandler = { progress in
            display.show(progress)
            return InterruptRequest.isRequested ? .cancel : .proceed
        }
        do {
            try reportingFailure(of: "generate") {
                defer { display.finishLine() }
                let (model, transformer, size) = try modelChoice()
                // Settings are checked against the transformer's config before the (long) model loading.
                let folder = try FluxPipelineLoader.folder(for: model, transformerReplaced: transformer != nil,
                                                           textEncoder2Replaced: textEncoder2 != nil)
                let transformerConfig = try FluxModelFiles(path: transformer ?? folder.path("transformer")).config
                let configuration = FluxPipeline.Configuration(
                    prompts: prompt, imagesPerPrompt: batch, steps: steps, guidance: guidance, width: width ?? size,
                    height: height ?? size,
                    seed: seed ?? UInt64.random(in: 0..<(1 << 53)), maxSequenceLength: maxSequenceLength)
                let settings = try configuration.resolved(for: transformerConfig)
                print(describe(folder, transformer, transformerConfig, settings))
                for lora in loras { try lora.check(against: transformerConfig) }
                let options = try loadOptions(transformer)
                let pipeline = try FluxPipelineLoader.load(folder: folder, options: options, progress: handler)
                display.finishLine()
                for note in pipeline.models.notes { print("note: \(note)") }
                if !loras.isEmpty {
                    guard let adaptable = pipeline.models.transformer as? any LoRAAdaptable else {
                        throw ValidationError("this transformer takes no LoRAs")
                    }
                    try adaptable.loras.apply(loras)
                }
                let result = try pipeline.generate(configuration, progress: handler)
                display.finishLine()
                let paths = try FluxImageFiles.write(result, to: output, extra: pngExtras(model, transformer))
                if let saveTensors { try writeTensors(result, to: saveTensors) }
                let times = [FluxPipelineProgress.Stage.encoding, .denoising, .decoding].map {
                    "\($0.rawValue) \(String(format: "%.2f", result.stageSeconds[$0] ?? 0)) s"
                }
                let rate = Double(settings.steps) / max(result.stageSeconds[.denoising] ?? 0, 1e-9)
                print("done: \(times.joined(separator: ", ")) (\(String(format: "%.3f", rate)) steps/s)")
                if case .cuda(let context) = options.device {
                    let memory = try context.memoryPool.statistics()
                    let peak = Double(memory.peakReservedBytes ?? memory.peakLiveBytes) / Double(1 << 30)
                    print("peak GPU memory (memory pool): \(String(format: "%.2f", peak)) GiB")
                }
                print("wrote \(paths.joined(separator: ", "))")
            }
        } catch let exit as ExitCode where exit == .failure && InterruptRequest.isRequested {
            throw ExitCode(130)
        }
    }

    /// --model and --transformer, or the built-in demo model (`DemoModelLocator`) with its SVDQuant INT4
    /// transformer; and the default image size (the demo model was trained at 128×128).
    private func modelChoice() throws -> (model: String, transformer: String?, size: Int) {
        if let model { return (model, transformer, 1024) }
        let demo = try DemoModelLocator.locate()
        let int4 = (demo as NSString).appendingPathComponent(DemoModelLocator.int4TransformerFile)
        return (demo, transformer ?? int4, DemoModelLocator.imageSize)
    }

    private func loadOptions(_ transformer: String?) throws -> FluxPipelineLoadOptions {
        let device: FluxPipelineDevice = switch self.device {
        case .cpu: .cpu
        case .cuda: .cuda(try CUDAContext(deviceIndex: 0))
        }
        return FluxPipelineLoadOptions(device: device, dtype: dtype == .f32 ? .f32 : .bf16, transformerPath: transformer,
                                       textEncoder2AWQPath: textEncoder2, numerics: numerics, attention: attention,
                                       fp8Accumulation: fp8Accumulation ?? .standard)
    }

    private func describe(_ folder: FluxPipelineFolder, _ transformer: String?, _ config: FluxConfig, _ settings: FluxPipeline.Resolved) -> String {
        let kind = config.guidanceEmbeds ? "guidance-distilled (dev-like)" : "no guidance embedder (schnell-like)"
        let guidanceText = settings.guidance.map { "guidance \($0)" } ?? "no guidance"
        return """
            model \(folder.root)\(transformer.map { " with transformer \($0)" } ?? "")\(textEncoder2.map { " and 4-bit T5 \($0)" } ?? ""): \(kind), \(device.rawValue), \(dtype.rawValue)\(device == .cuda ? ", \(numerics.rawValue) W4A4 numerics" : "")
            \(settings.batch) image\(settings.batch == 1 ? "" : "s") of \(settings.width)×\(settings.height), \(settings.steps) steps, \(guidanceText), seed \(settings.seed), \(settings.maxSequenceLength) T5 tokens
            """
    }

    private func pngExtras(_ model: String, _ transformer: String?) -> [PNGWriter.TextEntry] {
        [PNGWriter.TextEntry(keyword: "model", text: model)]
            + (transformer.map { [PNGWriter.TextEntry(keyword: "transformer", text: $0)] } ?? [])
            + (textEncoder2.map { [PNGWriter.TextEntry(keyword: "text_encoder_2", text: $0)] } ?? [])
            + [PNGWriter.TextEntry(keyword: "device", text: "\(device.rawValue) \(dtype.rawValue)\(device == .cuda ? " \(numerics.rawValue)" : "")")]
            + loras.map { PNGWriter.TextEntry(keyword: "lora", text: "\($0.path):\($0.strength)") }
    }

    private func writeTensors(_ result: FluxPipelineOutput, to path: String) throws {
        var writer = SafeTensorsWriter(metadata: ["prompts": result.settings.prompts.joined(separator: "\n"),
                                                  "seed": String(result.settings.seed), "steps": String(result.settings.steps)])
        try writer.add("prompt_embeds", result.embeddings.prompt)
        try writer.add("pooled_prompt_embeds", result.embeddings.pooled)
        try writer.add("noise", result.latents.initial)
        try writer.add("latents", result.latents.final)
        try writer.add("image", result.decoded)
        try writer.write(to: path)
    }
}
