import ArgumentParser
import Foundation
import Nunchaku

/// `nunchaku eval`: SVDQuant's quality table on the built-in demo model.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Compare BF16, SVDQuant INT4/NVFP4, naive W4A4 RTN and W4A16 on the demo model's held-out prompts.",
        discussion: """
            Generates every held-out prompt of the flux-shapes demo model (heldout_prompts.json: captions excluded \
            from its training) with each variant on the CPU in bf16, same seeds, and reports prompt adherence \
            (0–100, by a pixel-analysis checker of the caption grammar) and PSNR / SSIM against the BF16 images. \
            SVDQuant INT4 is the shipped checkpoint; NVFP4 is quantized now with the same calibration inputs; naive \
            W4A4 RTN and W4A16 are simulated from the BF16 weights (docs/demo.md).
            """
    )

    @Option(help: "The demo model folder (default: the built-in one, as `nunchaku generate` finds it).")
    var model: String?

    @Option(help: "Denoising steps (default: the model's, 4).")
    var steps: Int?

    @Option(help: "Seed of the first prompt; prompt i uses seed + i.")
    var seed: UInt64 = 0

    @Option(help: "Use only the first N held-out prompts.")
    var prompts: Int?

    @Option(parsing: .upToNextOption, help: "Variants to run (BF16 always runs, as the reference): int4 nvfp4 rtn w4a16.")
    var variants: [String] = ["int4", "nvfp4", "rtn", "w4a16"]

    @Option(help: "Write every generated image as PNG into this folder.")
    var images: String?

    @Option(help: ArgumentHelp(
        "Put outlier channels this many times larger (a power of two) into the BF16 transformer before making the quantized variants.",
        discussion: "An exact reparameterization (the BF16 function is unchanged; its row is added): the demo model has no activation outliers, large FLUX-class models do (docs/demo.md)."))
    var outlierFactor: Float?

    @Option(help: "How many outlier channels --outlier-factor makes, spread evenly over the model width.")
    var outlierChannels: Int = 2

    @Flag(help: "Print the report as JSON (per-prompt scores and checker details) instead of the table.")
    var json = false

    func validate() throws {
        if let prompts, prompts < 1 { throw ValidationError("--prompts must be at least 1") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if outlierChannels < 1 { throw ValidationError("--outlier-channels must be at least 1") }
        _ = try chosenVariants()
    }

    func run() throws {
        try reportingFailure(of: "eval") {
            let folder = try model ?? DemoModelLocator.locate()
            let evaluation = ShapesEvaluation(steps: steps, seed: seed, promptLimit: prompts,
                                              variants: [.bf16] + (try chosenVariants()), imagesFolder: images,
                                              stress: outlierFactor.map { OutlierStress(factor: $0, channelCount: outlierChannels) })
            let report = try evaluation.run(model: folder) { line in
                FileHandle.standardError.write(Data("\(line)\n".utf8))
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print("model \(report.model): \(report.variants.first?.prompts.count ?? 0) held-out prompts, \(report.size)×\(report.size), \(report.steps) steps, seeds \(report.seed)…")
                if let outliers = report.outliers { print("quantized variants made from the BF16 model with outlier \(outliers.summary)") }
                print(report.table)
            }
        }
    }

    private func chosenVariants() throws -> [EvaluationVariant] {
        let names: [String: EvaluationVariant] = ["int4": .svdquantINT4, "nvfp4": .svdquantNVFP4, "rtn": .naiveW4A4, "w4a16": .w4a16]
        return try variants.map { name in
            guard let variant = names[name.lowercased()] else {
                throw ValidationError("unknown variant \(name); choose from int4, nvfp4, rtn, w4a16")
            }
            return variant
        }
    }
}
