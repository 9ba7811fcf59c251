import ArgumentParser
import Foundation
import Nunchaku

/// `nunchaku quantize`: a BF16 diffusers FLUX transformer in, a Nunchaku SVDQuant merged checkpoint out.
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize a BF16 FLUX transformer into a Nunchaku SVDQuant (INT4 or NVFP4) checkpoint.",
        discussion: """
            --model is a diffusers FLUX transformer: a transformer folder (config.json + \
            diffusion_pytorch_model*.safetensors), a pipeline folder (its transformer/ is used), or one .safetensors \
            file with the config in its metadata or a config.json beside it.

            The output is Nunchaku's merged single file: SVDQuant W4A4 layers (qkv_proj, out_proj, mlp_fc1/fc2, …), \
            the adaLN modulation layers as AWQ W4A16, everything else BF16, with the config, quantization_config \
            and model_class metadata Nunchaku's loaders read.

            Calibration: --calibration-inputs runs the BF16 model on the CPU on forward inputs (the files \
            `nunchaku run-transformer --inputs` reads; give several for more timesteps and prompts) and keeps \
            --calibration-rows random input rows per layer; --calibration reads activations saved before \
            (--save-calibration writes them: one [rows, K] tensor per W4A4 layer, named like the layer, \
            docs/quantizer.md). --calibration-prompts instead runs the whole text-to-image pipeline on the CPU \
            (bf16): for each prompt of the file (one per line, seed = its index) the text encoders and every \
            denoising step of --calibration-steps at --calibration-size pixels, recording the transformer's layer \
            inputs on the way (no image is decoded). The text encoders, tokenizers and scheduler come from \
            --calibration-pipeline (a FLUX pipeline folder or a cached Hub repo id; default --model when it is a \
            pipeline folder). Without any of these, the smoothing is chosen from the weights alone (worse).

            Layers are quantized one at a time and kept in <output>.parts/; run the same command again after an \
            interruption to continue (layers whose settings, weights and calibration match are reused), or pass \
            --restart to start over. The folder is deleted when the output is complete.

            --ablation prints the SVDQuant ablation (RTN, smoothing only, low-rank only, SVDQuant at ranks 16, \
            32, 64, both formats) for one layer on its calibration rows (half held out) instead of quantizing.
            """
    )

    enum Precision: String, ExpressibleByArgument, CaseIterable { case int4, nvfp4 }

    @Option(help: "The BF16 diffusers FLUX transformer (folder or .safetensors file).")
    var model: String

    @Option(name: [.short, .customLong("output")], help: "The checkpoint to write (.safetensors).")
    var output: String?

    @Option(help: "4-bit format: int4 (Ampere–Hopper) or nvfp4 (Blackwell).")
    var precision: Precision = .int4

    @Option(help: "Rank of the low-rank branch (a multiple of 16).")
    var rank = 32

    @Option(help: "Saved calibration activations (.safetensors).")
    var calibration: String?

    @Option(name: .customLong("calibration-inputs"), help: "Forward inputs to record activations on (repeatable).")
    var calibrationInputs: [String] = []

    @Option(name: .customLong("calibration-prompts"), help: "A text file of prompts (one per line) to run the pipeline on for calibration.")
    var calibrationPrompts: String?

    @Option(name: .customLong("calibration-pipeline"), help: "With --calibration-prompts: the FLUX pipeline folder or cached repo id (default: --model).")
    var calibrationPipeline: String?

    @Option(name: .customLong("calibration-steps"), help: "With --calibration-prompts: denoising steps per prompt (default: the model's, 28 dev / 4 schnell).")
    var calibrationSteps: Int?

    @Option(name: .customLong("calibration-size"), help: "With --calibration-prompts: image width and height in pixels (a multiple of 16).")
    var calibrationSize = 512

    @Option(name: .customLong("calibration-rows"), help: "Random activation rows kept per layer.")
    var calibrationRows = CalibrationCollection.defaultRowsPerLayer

    @Option(name: .customLong("save-calibration"), help: "Also write the calibration activations to this file.")
    var saveCalibration: String?

    @Option(help: "Smoothing search grid: α = i/grid for 0 < i < grid, plus no smoothing.")
    var grid = 20

    @Option(name: .customLong("low-rank-rounds"), help: "At most this many rounds of the low-rank/residual iteration.")
    var lowRankRounds = 4

    @Flag(name: .customLong("separate-smoothing"), help: "Smooth a single block's qkv_proj and mlp_fc1 each on its own (default: one vector for both, as DeepCompressor does, so the Hopper fast path quantizes their shared input once).")
    var separateSmoothing = false

    @Flag(help: "Ignore the work folder of an interrupted run and quantize every layer again.")
    var restart = false

    @Option(help: "After writing, measure the output against the BF16 model on these forward inputs (repeatable).")
    var evaluate: [String] = []

    @Flag(help: "Print the ablation table for one layer instead of quantizing (needs calibration).")
    var ablation = false

    @Option(name: .customLong("ablation-layer"), help: "The layer for --ablation (default: the first qkv_proj).")
    var ablationLayer: String?

    func validate() throws {
        let sources = [calibration != nil, !calibrationInputs.isEmpty, calibrationPrompts != nil].filter { $0 }.count
        if sources > 1 {
            throw ValidationError("give one of --calibration, --calibration-inputs and --calibration-prompts")
        }
        if calibrationPrompts == nil, calibrationPipeline != nil || calibrationSteps != nil {
            throw ValidationError("--calibration-pipeline and --calibration-steps go with --calibration-prompts")
        }
        if !ablation && output == nil { throw ValidationError("missing --output (-o)") }
        if ablation && sources == 0 {
            throw ValidationError("--ablation measures on held-out activations: give --calibration, --calibration-inputs or --calibration-prompts")
        }
    }

    func run() throws {
        try reportingFailure(of: "quantize") {
            let start = ContinuousClock.now
            let source = try FluxSourceModel(path: model)
            let configuration = SVDQuantConfiguration(
                format: precision == .int4 ? .int4 : .nvfp4, rank: rank, smoothingGridPoints: grid, lowRankRounds: lowRankRounds,
                sharedSmoothing: !separateSmoothing)
            try FluxQuantizationJob.check(configuration, plan: source.plan)
            // --ablation writes no checkpoint, so it has no work folder.
            let work = ablation ? nil : output.map(QuantizationWorkFolder.init(output:))
            if restart { try work?.remove() }
            let calibrationSet = try loadCalibration(source, work: work)
            if let saveCalibration, let calibrationSet {
                try calibrationSet.write(to: saveCalibration)
                log("saved the calibration activations to \(saveCalibration)")
            }
            if ablation, let calibrationSet {
                return try runAblation(source, calibrationSet, configuration)
            }
            guard let output else { return }
            let job = try FluxQuantizationJob(
                model: source, output: output, configuration: configuration, calibration: calibrationSet,
                calibrationSource: calibration ?? "calibration")
            log("\(source.source): \(source.config.numLayers)+\(source.config.numSingleLayers) blocks, width \(source.config.innerDim); "
                + "\(configuration.format) rank \(configuration.rank), \(source.plan.layers.count) layers, work folder \(job.workFolder.path)")
            let outcomes = try job.run(progress: report)
            let errors = outcomes.filter { $0.layer.calibration != nil }.map(\.relativeError)
            let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? NSNumber)?.int64Value ?? 0
            print("wrote \(output) (\(size / 1_048_576) MiB) in \(Self.duration((ContinuousClock.now - start).seconds)); "
                + "W4A4 layer error mean \(Self.decimal(errors.reduce(0, +) / Double(max(errors.count, 1)))), "
                + "max \(Self.decimal(errors.max() ?? 0)), \(outcomes.filter(\.reused).count) layer(s) reused")
            if !evaluate.isEmpty {
                let evaluation = try QuantizedFluxEvaluation(quantizedCheckpoint: output, reference: source)
                for path in evaluate {
                    let error = try evaluation.relativeError(inputs: SafeTensorsCheckpoint(path: path))
                    print("output relative error against the BF16 model on \(path): \(Self.decimal(error))")
                }
            }
        }
    }

    /// The calibration activations from --calibration, from the work folder's cache, or recorded now (and cached in
    /// the work folder when there is one); nil without.
    private func loadCalibration(_ source: FluxSourceModel, work: QuantizationWorkFolder?) throws -> CalibrationSet? {
        if let calibration {
            let set = try CalibrationSet.read(path: calibration)
            try set.validate(against: source.plan, source: calibration)
            return set
        }
        if let calibrationPrompts {
            return try recordOnPrompts(source, path: calibrationPrompts, work: work)
        }
        guard !calibrationInputs.isEmpty else {
            log("no calibration: the smoothing is chosen from the weights alone (activation outliers are not seen); "
                + "give --calibration-inputs or --calibration-prompts for a better checkpoint")
            return nil
        }
        let key = try CalibrationCache.key(model: source, inputPaths: calibrationInputs, rowsPerLayer: calibrationRows, seed: Self.calibrationSeed)
        return try cachedCalibration(key: key, work: work) {
            let inputs = try calibrationInputs.map { try SafeTensorsCheckpoint(path: $0) as any TensorProvider }
            let start = ContinuousClock.now
            return try CalibrationCollection.collect(model: source, inputs: inputs, rowsPerLayer: calibrationRows, seed: Self.calibrationSeed) { done in
                log("calibration forward \(done)/\(inputs.count) done (\(Self.duration((ContinuousClock.now - start).seconds)))")
            }
        }
    }

    private static let calibrationSeed: UInt64 = 0xCA11B

    /// The calibration cached in the work folder under `key`, or `record()`'s (then cached there).
    private func cachedCalibration(key: String, work: QuantizationWorkFolder?, record: () throws -> CalibrationSet) throws -> CalibrationSet {
        if let work, let cached = CalibrationCache.load(path: work.calibrationCachePath, key: key) {
            log("reusing the calibration activations recorded by the interrupted run")
            return cached
        }
        let set = try record()
        if let work {
            try work.create()
            try CalibrationCache.store(set, path: work.calibrationCachePath, key: key)
        }
        return set
    }

    /// Records the layer inputs of the pipeline's denoising loops over the prompts in the file at `path`.
    private func recordOnPrompts(_ source: FluxSourceModel, path: String, work: QuantizationWorkFolder?) throws -> CalibrationSet {
        let prompts = try FluxPromptCalibration.prompts(contentsOfFile: path)
        let folder = try FluxPipelineLoader.folder(for: calibrationPipeline ?? model, transformerReplaced: true)
        let template = FluxPipeline.Configuration(prompts: [], steps: calibrationSteps, width: calibrationSize, height: calibrationSize)
        var first = template
        first.prompts = [prompts[0]]
        let steps = try first.resolved(for: source.config).steps   // settings checked before the long work
        let settings = "prompts: pipeline \(folder.root), \(steps) steps, \(calibrationSize) px"
        let key = try CalibrationCache.key(model: source, inputPaths: [path], rowsPerLayer: calibrationRows,
                                           seed: Self.calibrationSeed, settings: settings)
        return try cachedCalibration(key: key, work: work) {
            log("calibration: \(prompts.count) prompt(s) × \(steps) steps at \(calibrationSize)² through \(folder.root)")
            let start = ContinuousClock.now
            return try CalibrationCollection.collect(model: source, rowsPerLayer: calibrationRows, seed: Self.calibrationSeed) { transformer in
                let pipeline = try FluxPipelineLoader.load(folder: folder, options: FluxPipelineLoadOptions(dtype: .bf16), transformer: transformer)
                try FluxPromptCalibration.run(pipeline, prompts: prompts, template: template) { index, progress in
                    if progress.stage == .denoising, progress.completed > 0 {
                        log("calibration prompt \(index + 1)/\(prompts.count), step \(progress.completed)/\(progress.total) "
                            + "(\(Self.duration((ContinuousClock.now - start).seconds)))")
                    }
                    return .proceed
                }
            }
        }
    }

    private func runAblation(_ source: FluxSourceModel, _ calibration: CalibrationSet, _ configuration: SVDQuantConfiguration) throws {
        let name = ablationLayer ?? source.plan.w4a4Layers[0].name
        let layer = try source.ablationLayer(named: name, calibration: calibration)
        log("ablation on \(name) (\(layer.outFeatures)×\(layer.inFeatures)), \(layer.calibration.count / layer.inFeatures) calibration "
            + "and \(layer.evaluationRows) held-out rows")
        let results = try QuantizationAblation.run(layer: layer, base: configuration) { result in
            log("  \(result.format) \(result.method.rawValue) rank \(result.rank): \(Self.decimal(result.relativeError)) "
                + "(\(Self.duration(result.seconds)))")
        }
        print(QuantizationAblation.table(results))
    }

    private func report(_ event: FluxQuantizationEvent) {
        switch event {
        case let .layerStarted(index, count, layer):
            log("\(Self.position(index, count)) \(layer.name) (\(layer.kind) \(layer.inFeatures)→\(layer.outFeatures)) …")
        case let .layerFinished(outcome):
            let alpha = outcome.layer.calibration == nil ? "" : "α \(outcome.alpha.map(Self.decimal) ?? "none"), "
            let eta = outcome.remainingSeconds.map { ", ETA \(Self.duration($0))" } ?? ""
            log("\(Self.position(outcome.index, outcome.count)) \(outcome.layer.name): \(outcome.reused ? "reused, " : "")"
                + "\(alpha)error \(Self.decimal(outcome.relativeError)), \(Self.duration(outcome.seconds))\(eta)")
        case let .writingOutput(path, count):
            log("writing \(count) tensors to \(path)")
        }
    }

    private static func position(_ index: Int, _ count: Int) -> String {
        let width = String(count).count, number = String(index + 1)
        return "[" + String(repeating: " ", count: width - number.count) + number + "/\(count)]"
    }

    /// Three significant digits.
    private static func decimal(_ value: Double) -> String { QuantizationAblation.formatted(value) }

    private static func duration(_ seconds: Double) -> String {
        if seconds < 60 { return "\((seconds * 10).rounded() / 10) s" }
        let whole = Int(seconds.rounded())
        return whole < 3600 ? "\(whole / 60) min \(whole % 60) s" : "\(whole / 3600) h \(whole % 3600 / 60) min"
    }
}

private extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

/// One progress line on standard error.
private func log(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
