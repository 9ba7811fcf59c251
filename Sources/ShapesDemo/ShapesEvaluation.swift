import Foundation
import NunchakuCore
import Pipelines
import Quantizer

/// One prompt's result for one variant.
public struct PromptEvaluation: Sendable, Codable {
    public let prompt: String
    public let adherence: Double
    /// Against the BF16 image of the same prompt and seed; nil for BF16 itself.
    public let psnr: Double?
    public let ssim: Double?
    public let check: ShapesCheck
}

/// One variant's row of the table.
public struct VariantEvaluation: Sendable, Codable {
    public let variant: EvaluationVariant
    public let provenance: String
    /// Mean prompt adherence, 0–100.
    public let adherence: Double
    /// Mean PSNR (dB) and SSIM against BF16 over the prompts; nil for BF16.
    public let psnr: Double?
    public let ssim: Double?
    /// Generation time of all prompts (model preparation excluded), and the preparation (quantization) time.
    public let generationSeconds: Double
    public let preparationSeconds: Double
    public let prompts: [PromptEvaluation]
}

/// Everything `nunchaku eval` measured.
public struct ShapesEvaluationReport: Sendable, Codable {
    public let model: String
    /// The outlier channels the quantized variants were made with (`--outlier-factor`), or nil.
    public let outliers: OutlierChannels?
    public let steps: Int
    public let seed: UInt64
    public let size: Int
    public let variants: [VariantEvaluation]

    /// Each variant's adherence against the BF16 row's, prompt by prompt (nil for BF16, or without a BF16 row).
    public func adherenceChange(of row: VariantEvaluation) -> PairedDifference? {
        guard row.variant != .bf16, let reference = variants.first(where: { $0.variant == .bf16 }) else { return nil }
        return PairedDifference(row.prompts.map(\.adherence), reference: reference.prompts.map(\.adherence))
    }

    /// The table as Markdown. "Δ adherence" is the mean per-prompt change against BF16 ± its standard error, with
    /// the number of prompts whose score changed.
    public var table: String {
        var lines = ["| variant | adherence (0–100) | Δ adherence vs BF16 ± SE (prompts changed) | PSNR vs BF16 (dB) | SSIM vs BF16 | generation s |",
                     "| --- | --- | --- | --- | --- | --- |"]
        for row in variants {
            let psnr = row.psnr.map { String(format: "%.2f", $0) } ?? "—"
            let ssim = row.ssim.map { String(format: "%.4f", $0) } ?? "—"
            let change = adherenceChange(of: row)?.text ?? "—"
            lines.append("| \(row.variant.rawValue) | \(String(format: "%.1f", row.adherence)) | \(change) | \(psnr) | \(ssim) | \(String(format: "%.1f", row.generationSeconds)) |")
        }
        return lines.joined(separator: "\n")
    }
}

/// `nunchaku eval`: generates the demo model's held-out prompts with every variant (same seeds), scores each image
/// with `ShapesChecker` and compares it with the BF16 image (`ImageSimilarity`).
public struct ShapesEvaluation: Sendable {
    public var steps: Int?
    public var seed: UInt64
    /// Use only the first this many held-out prompts (nil: all).
    public var promptLimit: Int?
    public var variants: [EvaluationVariant]
    /// Write every image as PNG here (`<variant>-<index>.png`), if set.
    public var imagesFolder: String?
    /// Outlier channels for the quantized variants' starting model (adds the `bf16Outliers` row), or nil.
    public var stress: OutlierStress?

    public init(steps: Int? = nil, seed: UInt64 = 0, promptLimit: Int? = nil,
                variants: [EvaluationVariant] = EvaluationVariant.allCases, imagesFolder: String? = nil,
                stress: OutlierStress? = nil) {
        self.steps = steps
        self.seed = seed
        self.promptLimit = promptLimit
        self.variants = variants
        self.imagesFolder = imagesFolder
        self.stress = stress
    }

    /// The held-out prompts stored with the model (`heldout_prompts.json`: `{"prompts": […]}`).
    public static func heldOutPrompts(model: String) throws -> [String] {
        let path = (model as NSString).appendingPathComponent(DemoModelLocator.heldOutPromptsFile)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NunchakuError.io(path: path, reason: "missing: the demo model's held-out prompts")
        }
        struct File: Decodable { let prompts: [String] }
        guard let file = try? JSONDecoder().decode(File.self, from: data), !file.prompts.isEmpty else {
            throw NunchakuError.io(path: path, reason: "expected {\"prompts\": [\"…\", …]} with at least one prompt")
        }
        return file.prompts
    }

    /// Runs the evaluation on the demo folder `model`.
    /// - Parameter log: progress lines (model preparation, one line per variant and prompt batch).
    public func run(model: String, log: @escaping (String) -> Void = { _ in }) throws -> ShapesEvaluationReport {
        var prompts = try Self.heldOutPrompts(model: model)
        if let promptLimit { prompts = Array(prompts.prefix(max(1, promptLimit))) }
        let scenes = try prompts.map { try ShapesScene(prompt: $0) }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("nunchaku-eval-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        if let imagesFolder { try FileManager.default.createDirectory(atPath: imagesFolder, withIntermediateDirectories: true) }

        let pipelines = try EvaluationPipelines(root: model, scratch: scratch, stress: stress)
        let stressRow: [EvaluationVariant] = stress == nil ? [] : [.bf16Outliers]
        let order = [EvaluationVariant.bf16] + stressRow + variants.filter { $0 != .bf16 && $0 != .bf16Outliers }
        var reference: [RGBImage] = []
        var rows: [VariantEvaluation] = []
        var resolvedSteps = 0
        for variant in order {
            let clock = ContinuousClock()
            let prepared = clock.now
            log("\(variant.rawValue): preparing (\(variant.provenance(outliers: pipelines.outliers)))")
            let pipeline = try pipelines.pipeline(for: variant, log: log)
            let preparation = Self.seconds(clock.now - prepared)
            let started = clock.now
            var results: [PromptEvaluation] = []
            for (index, (prompt, scene)) in zip(prompts, scenes).enumerated() {
                let configuration = FluxPipeline.Configuration(
                    prompt: prompt, steps: steps, width: DemoModelLocator.imageSize, height: DemoModelLocator.imageSize,
                    seed: seed + UInt64(index))
                let output = try pipeline.generate(configuration)
                resolvedSteps = output.settings.steps
                let image = output.images[0]
                if let imagesFolder {
                    let name = variant.rawValue.lowercased().filter { $0.isLetter || $0.isNumber }
                    try PNGWriter.write(image, to: (imagesFolder as NSString).appendingPathComponent("\(name)-\(index).png"),
                                        text: output.pngText(imageIndex: 0))
                }
                if variant == .bf16 { reference.append(image) }
                let check = try ShapesChecker.check(image, scene: scene)
                let isReference = variant == .bf16
                results.append(PromptEvaluation(
                    prompt: prompt, adherence: check.score,
                    psnr: isReference ? nil : try ImageSimilarity.psnr(reference[index], image),
                    ssim: isReference ? nil : try ImageSimilarity.ssim(reference[index], image), check: check))
            }
            let generation = Self.seconds(clock.now - started)
            let row = VariantEvaluation(
                variant: variant, provenance: variant.provenance(outliers: pipelines.outliers), adherence: Self.mean(results.map(\.adherence)),
                psnr: variant == .bf16 ? nil : Self.mean(results.compactMap(\.psnr)),
                ssim: variant == .bf16 ? nil : Self.mean(results.compactMap(\.ssim)),
                generationSeconds: generation, preparationSeconds: preparation, prompts: results)
            log("\(variant.rawValue): adherence \(String(format: "%.1f", row.adherence)), \(prompts.count) images in \(String(format: "%.1f", generation)) s")
            if variants.contains(variant) || stressRow.contains(variant) { rows.append(row) }
        }
        return ShapesEvaluationReport(model: model, outliers: pipelines.outliers, steps: resolvedSteps, seed: seed, size: DemoModelLocator.imageSize, variants: rows)
    }

    private static func mean(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}
