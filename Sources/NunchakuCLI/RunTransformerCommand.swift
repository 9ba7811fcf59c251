import ArgumentParser
import Foundation
import Nunchaku

extension AttentionPrecision: ExpressibleByArgument {}

/// `nunchaku run-transformer`: one FLUX transformer forward on saved inputs.
struct RunTransformerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-transformer",
        abstract: "Run one FLUX transformer forward on inputs from a safetensors file.",
        discussion: """
            --model is a diffusers transformer folder (config.json + diffusion_pytorch_model*.safetensors), a \
            pipeline folder (its transformer/ is used), a Nunchaku legacy folder (transformer_blocks.safetensors + \
            unquantized_layers.safetensors + config.json), a Nunchaku-Lite folder, or one .safetensors file whose \
            metadata holds the config (Nunchaku merged files such as svdq-int4_r32-flux.1-dev.safetensors, and the \
            canonical and dense files of `nunchaku convert`).

            SVDQuant checkpoints (INT4 or NVFP4) run with Nunchaku's kernel numerics on the CPU and need \
            --dtype bf16; --dequantize runs their dense equivalent instead (no activation quantization), in either \
            dtype.

            --inputs holds the forward arguments under diffusers' names: hidden_states [B, N, in_channels], \
            encoder_hidden_states [B, T, joint_attention_dim], pooled_projections [B, pooled_projection_dim], \
            timestep [B] (sigma in [0, 1]), guidance [B] (models with guidance_embeds only), img_ids [N, 3], \
            txt_ids [T, 3]. scripts/parity/flux_transformer_reference.py --model-dir writes such a file.

            The output file holds `sample` [B, N, patch² · out_channels] in the compute dtype. With --compare, \
            the relative error ‖ours − ref‖/‖ref‖ against that file's `sample` (and every other `sample_…` tensor, \
            e.g. `sample_bf16`) is printed.

            --device cuda runs the model on the GPU in bf16 (SVDQuant layers on the W4A4/AWQ kernels, 4-bit on the \
            GPU), times --steps forwards with CUDA events after a warm-up step, and reports the peak GPU memory from \
            the memory pool. --compare-cpu also runs the CPU model (bf16; SVDQuant layers kernel-exact) on the same \
            weights and inputs and prints the relative error between the two.

            --numerics fast (with --device cuda, sm_90+) runs W4A4 layers (INT4, NVFP4) on the Hopper FP8 path: per-token \
            e4m3 activations, the 4-bit weights expanded per layer with their group scales folded in, one cuBLASLt \
            FP8 GEMM with the low-rank branch (docs/hopper.md); exact (the default) keeps Nunchaku's numerics. \
            --compare-dense also runs the CPU model with SVDQuant layers as their dense equivalents (bf16) and prints \
            the error against it; --fp8-accumulation picks where the FP8 GEMMs accumulate fast. --dequantize with \
            --device cuda and --random-weights int4|nvfp4 runs that dense-equivalent model on the GPU instead (bf16 \
            on cuBLASLt; write it with --output and compare other runs with --compare: the end-to-end error at full size). --attention fp8 (with --device cuda, sm_90a) runs attention on e4m3 q, k, v and P \
            with per-(sample, head) scales (docs/hopper-attention.md).

            --cuda-graph (with --device cuda) then captures the step into a CUDA graph, times --steps replays the \
            same way, and prints the time saved and whether the graph's output equals the eager one bit for bit.

            --random-weights bf16|int4|nvfp4 builds a random-weight model of --config (flux-dev, flux-schnell or a \
            config.json) in memory, with random inputs of --tokens-image image tokens (4096 = 1024×1024 px, 1024 = \
            512×512 px; several values run one after the other, smallest first, on the one model) and --tokens-text \
            text tokens: the full-size model without a checkpoint on disk.
            """
    )

    enum Device: String, ExpressibleByArgument, CaseIterable { case cpu, cuda }
    enum ComputeType: String, ExpressibleByArgument, CaseIterable { case f32, bf16 }
    enum RandomFormat: String, ExpressibleByArgument, CaseIterable { case bf16, int4, nvfp4 }
    enum Numerics: String, ExpressibleByArgument, CaseIterable { case exact, fast }

    @Option(help: "The transformer: a folder or a .safetensors file.")
    var model: String?

    @Option(help: "A .safetensors file with the forward arguments.")
    var inputs: String?

    @Option(help: "Where to write the output `sample` (.safetensors); optional with --random-weights.")
    var output: String?

    @Option(help: "Where to run: cpu or cuda (GPU 0).")
    var device: Device = .cpu

    @Option(help: "Compute dtype: f32 (exact) or bf16 (every op output rounded to bf16). Default: f32 on the CPU (bf16 for random SVDQuant models), bf16 on CUDA (its only dtype).")
    var dtype: ComputeType?

    @Option(help: "A .safetensors file whose `sample` to compare the output with.")
    var compare: String?

    @Flag(help: "Run SVDQuant layers as the dense layers they stand for (a reference), not with 4-bit activations.")
    var dequantize = false

    @Option(help: "Build a random-weight model instead of loading one: bf16 (diffusers layout), int4 or nvfp4 (SVDQuant).")
    var randomWeights: RandomFormat?

    @Option(help: "With --random-weights: flux-dev, flux-schnell, or a config.json path.")
    var config = "flux-dev"

    @Option(parsing: .upToNextOption, help: "With --random-weights: image tokens (latent tokens; 4096 for 1024×1024 px); one or more.")
    var tokensImage = [4096]

    @Option(help: "With --random-weights: text tokens.")
    var tokensText = 512

    @Option(help: "With --random-weights: batch size.")
    var batch = 1

    @Option(help: "With --random-weights: the seed of weights and inputs.")
    var seed: UInt64 = 0

    @Option(help: "With --device cuda: timed steps after the warm-up step.")
    var steps = 3

    @Flag(help: "With --device cuda: also run the CPU model and print the relative error between the two.")
    var compareCPU = false

    @Option(name: .customLong("lora"), help: "A LoRA file to apply, FILE or FILE:STRENGTH (default strength 1); repeatable.")
    var loras: [LoRAArgument] = []
    @Option(help: "With --device cuda: exact (Nunchaku's W4A4 numerics) or fast (FP8 on sm_90+, INT4 checkpoints).")
    var numerics: Numerics = .exact

    @Option(help: "With --numerics fast: where \(FP8Accumulation.optionHelp).")
    var fp8Accumulation: FP8Accumulation?

    @Option(help: "With --device cuda: attention operands bf16 (the default) or fp8 (e4m3, sm_90a).")
    var attention: AttentionPrecision = .bf16

    @Flag(help: "With --device cuda: also run the CPU model with dequantized (dense) SVDQuant layers and print the error.")
    var compareDense = false

    @Flag(name: .customLong("cuda-graph"), help: "With --device cuda: also time the step replayed as a CUDA graph.")
    var cudaGraph = false

    func validate() throws {
        if randomWeights == nil {
            guard model != nil, inputs != nil, output != nil else {
                throw ValidationError("--model, --inputs and --output are needed (or --random-weights)")
            }
        } else if model != nil || inputs != nil {
            throw ValidationError("--random-weights makes its own model and inputs: drop --model and --inputs")
        }
        if device == .cuda {
            guard dtype != .f32 else { throw ValidationError("--device cuda computes in bf16; drop --dtype f32") }
            guard !dequantize || (randomWeights != nil && randomWeights != .bf16 && numerics == .exact) else {
                throw ValidationError("--dequantize with --device cuda runs the dense equivalent of a --random-weights int4|nvfp4 model (no --numerics fast); for checkpoints on disk it is a CPU reference mode")
            }
            guard steps >= 1 else { throw ValidationError("--steps must be at least 1") }
            guard numerics == .fast || fp8Accumulation == nil else { throw ValidationError("--fp8-accumulation is for --numerics fast runs") }
        } else if compareCPU || compareDense || numerics == .fast || cudaGraph || attention == .fp8 || fp8Accumulation != nil {
            throw ValidationError("--compare-cpu, --compare-dense, --numerics fast, --fp8-accumulation, --attention fp8 and --cuda-graph are for --device cuda runs")
        }
    }

    func run() throws {
        try reportingFailure(of: "run-transformer") {
            switch device {
            case .cpu: try runOnCPU()
            case .cuda: try runOnGPU()
            }
        }
    }

    private func runOnCPU() throws {
        let clock = ContinuousClock()
        // Random SVDQuant models run their kernel-exact layers, which compute in bf16 only.
        let quantized = randomWeights != nil && randomWeights != .bf16
        let computeDType: DType = (dtype ?? (quantized ? .bf16 : .f32)) == .bf16 ? .bf16 : .f32
        var loaded: FluxTransformer?
        let loading = try clock.measure { loaded = try cpuModel(computeDType: computeDType) }
        guard let transformer = loaded else { return }
        print(try modelDescription())
        print("loaded in \(format(loading))")
        try transformer.loras.apply(loras)
        for arguments in try forwardArguments() {
            var sample: Tensor?
            let running = try clock.measure { sample = try transformer.forward(inputs: arguments) }
            guard let sample else { return }
            print("forward (cpu, \(computeDType)\(dequantize ? ", dequantized" : "")) in \(format(running))")
            try write(sample)
            try report(sample)
        }
    }

    private func runOnGPU() throws {
        let clock = ContinuousClock()
        let gpu = try CUDAContext(deviceIndex: 0)
        var loaded: FluxCUDATransformer?
        let loading = try clock.measure {
            if let randomWeights, dequantize {
                loaded = try FluxCUDATransformer(denseEquivalentOf: try randomCheckpoint(randomWeights), context: gpu, attention: attention)
            } else if let randomWeights {
                loaded = try FluxCUDATransformer(random: try randomCheckpoint(randomWeights), context: gpu, numerics: w4a4Numerics,
                                                 attention: attention)
            } else {
                loaded = try FluxCUDATransformer(files: try FluxModelFiles(path: model ?? ""), context: gpu, numerics: w4a4Numerics,
                                                 attention: attention)
            }
        }
        guard let transformer = loaded else { return }
        transformer.fastEngine?.accumulation = fp8Accumulation ?? .standard
        try transformer.loras.apply(loras)
        let weights = try gpu.memoryPool.statistics()
        print(try modelDescription())
        print("GPU: \(gpu.device.name) (sm_\(gpu.device.computeCapability.major)\(gpu.device.computeCapability.minor)), dense GEMM \(transformer.denseGEMM.rawValue), "
              + (dequantize ? "SVDQuant layers as their dense equivalents" : "W4A4 numerics \(transformer.numerics.rawValue)")
              + (transformer.fastEngine.map { ", FP8 accumulation \($0.accumulation.rawValue)" } ?? "") + ", attention \(transformer.attention)"
              + (transformer.fastEngine == nil ? "" : ", \(transformer.singleBlocksSharingInput) of \(transformer.config.numSingleLayers) single blocks share their input pass"))
        print("loaded in \(format(loading)); on the GPU: \(gib(weights.liveBytes)) in \(weights.liveBuffers) buffers (weights\(transformer.denseGEMM == .cublasLt ? " + the 32 MiB cuBLASLt workspace" : ""))")
        for arguments in try forwardArguments() {
            let uploaded = try FluxCUDAInputs(config: transformer.config, context: gpu, inputs: arguments)
            print("inputs: batch \(uploaded.batch), \(uploaded.imageTokens) image tokens, \(uploaded.textTokens) text tokens")
            let timing = try transformer.timeSteps(uploaded, warmUp: 1, steps: steps)
            let times = timing.stepMilliseconds.map { String(format: "%.1f", $0) }.joined(separator: ", ")
            print("step time (CUDA events): median \(String(format: "%.1f", timing.medianMilliseconds)) ms of \(steps) [\(times)]; warm-up step \(String(format: "%.1f", timing.warmUpMilliseconds[0])) ms")
            let memory = try gpu.memoryPool.statistics()
            let (free, total) = try gpu.memoryInfo()
            print("peak GPU memory so far (memory pool): \(gib(memory.peakReservedBytes ?? memory.peakLiveBytes)) reserved, \(gib(memory.peakLiveBytes)) in live buffers; driver: \(gib(total - free)) in use of \(gib(total)) (context, modules, cuBLASLt included)")
            if cudaGraph { try timeGraph(transformer, uploaded, eager: timing) }
            try write(timing.sample)
            try report(timing.sample)
            if compareCPU {
                let cpu = try cpuModel(computeDType: .bf16)
                try cpu.loras.apply(loras)
                let reference = try cpu.forward(inputs: arguments)
                print("relative error against the CPU model (bf16, same weights and inputs): \(try Comparison.relativeError(timing.sample, reference))")
            }
            if compareDense {
                let reference = try cpuModel(computeDType: .bf16, quantizedLayers: .dequantized).forward(inputs: arguments)
                print("relative error against the dense-equivalent CPU model (bf16): \(try Comparison.relativeError(timing.sample, reference))")
            }
        }
    }

    /// Captures the step into a CUDA graph, times its replays and prints them against the eager `timing`.
    private func timeGraph(_ transformer: FluxCUDATransformer, _ inputs: FluxCUDAInputs, eager: FluxCUDAStepTiming) throws {
        let clock = ContinuousClock()
        var runner: FluxCUDAGraphRunner?
        let capturing = try clock.measure { runner = try FluxCUDAGraphRunner(transformer: transformer, inputs: inputs) }
        guard let runner else { return }
        let replay = try runner.timeSteps(inputs, warmUp: 1, steps: steps)
        let identical = replay.sample.withUnsafeBytes { graph in eager.sample.withUnsafeBytes { graph.elementsEqual($0) } }
        let saved = eager.medianMilliseconds - replay.medianMilliseconds
        print("CUDA graph (captured in \(format(capturing))): "
              + String(format: "median %.1f ms of %d replays; saves %.2f ms (%.1f%%) per step; ",
                       replay.medianMilliseconds, steps, saved, 100 * saved / eager.medianMilliseconds)
              + (identical ? "output identical to the eager step" : "OUTPUT DIFFERS from the eager step"))
    }

    private var w4a4Numerics: W4A4Numerics { numerics == .fast ? .fast : .exact }

    /// The CPU model of --model or --random-weights; SVDQuant layers kernel-exact unless --dequantize or asked.
    private func cpuModel(computeDType: DType, quantizedLayers: SVDQuantLinearFactory.Mode? = nil) throws -> FluxTransformer {
        let mode = quantizedLayers ?? (dequantize ? .dequantized : .kernelExact)
        if let randomWeights {
            let checkpoint = try randomCheckpoint(randomWeights)
            return mode == .dequantized
                ? try FluxTransformer(denseEquivalentOf: checkpoint, computeDType: computeDType)
                : try FluxTransformer(random: checkpoint, computeDType: computeDType)
        }
        return try FluxTransformer(files: try FluxModelFiles(path: model ?? ""), computeDType: computeDType, quantizedLayers: mode)
    }

    private func randomCheckpoint(_ format: RandomFormat) throws -> FluxRandomCheckpoint {
        try FluxRandomCheckpoint(config: try FluxConfig.named(config), format: FluxRandomCheckpoint.Format(rawValue: format.rawValue)!, seed: seed)
    }

    /// The --inputs file, or random inputs for each --tokens-image value (smallest first).
    private func forwardArguments() throws -> [any TensorProvider] {
        guard randomWeights != nil else { return [try SafeTensorsCheckpoint(path: inputs ?? "")] }
        let config = try FluxConfig.named(self.config)
        return try tokensImage.sorted().map {
            try FluxRandomInputs.make(config: config, batch: batch, imageTokens: $0, textTokens: tokensText, seed: seed)
        }
    }

    private func modelDescription() throws -> String {
        guard let randomWeights else {
            let files = try FluxModelFiles(path: model ?? "")
            return "\(files.source): \(try detectCheckpointFormat(files.weights).title), \(files.config.numLayers)+\(files.config.numSingleLayers) blocks, width \(files.config.innerDim)"
        }
        let config = try FluxConfig.named(self.config)
        return "random \(randomWeights.rawValue) \(self.config) (seed \(seed)): \(config.numLayers)+\(config.numSingleLayers) blocks, width \(config.innerDim)"
    }

    private func write(_ sample: Tensor) throws {
        guard let output else { return }
        var writer = SafeTensorsWriter()
        try writer.add("sample", sample)
        try writer.write(to: output)
        print("wrote sample \(sample.shape) \(sample.dtype) to \(output)")
    }

    /// The output's size and finiteness, and its error against --compare.
    private func report(_ sample: Tensor) throws {
        let values = sample.floats()
        let rms = (values.reduce(0) { $0 + Double($1) * Double($1) } / Double(max(1, values.count))).squareRoot()
        print("sample \(sample.shape) \(sample.dtype): rms \(String(format: "%.4f", rms)), \(values.filter { !$0.isFinite }.count) non-finite")
        guard let compare else { return }
        let references = try SafeTensorsCheckpoint(path: compare)
        let names = ["sample"] + references.tensorNames.filter { $0.hasPrefix("sample_") }.sorted()
        for name in names {
            print("relative error against \(compare) `\(name)`: \(try Comparison.relativeError(sample, references.tensor(named: name)))")
        }
    }

    private func format(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        return seconds < 1 ? "\((seconds * 1e4).rounded() / 10) ms" : "\((seconds * 1e3).rounded() / 1e3) s"
    }
}
