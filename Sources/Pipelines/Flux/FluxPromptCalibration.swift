import Foundation
import NunchakuCore

/// Drives a FLUX pipeline's text encoders and denoising loop over calibration prompts, so that a transformer which
/// records its layers' inputs (the quantizer's `CalibrationCollection`) sees the activations real generations
/// produce: every step of every prompt. No image is decoded.
public enum FluxPromptCalibration {
    /// The prompts of a text file: one per line; blank lines are skipped, surrounding whitespace is dropped.
    /// - Throws: `NunchakuError.io` when the file cannot be read or holds no prompt.
    public static func prompts(contentsOfFile path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw NunchakuError.io(path: path, reason: "cannot read the calibration prompts")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw NunchakuError.io(path: path, reason: "calibration prompts are not UTF-8 text")
        }
        let prompts = text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        guard !prompts.isEmpty else { throw NunchakuError.io(path: path, reason: "holds no prompt (one prompt per line)") }
        return prompts
    }

    /// Encodes each prompt and runs the whole denoising loop on it (prompt `i` with seed `i`), one prompt at a time.
    /// - Parameters:
    ///   - template: steps, size, guidance and T5 length (nil fields take the model's defaults); its prompts and
    ///     seed are ignored.
    ///   - progress: each report with the index of the prompt it belongs to; `.cancel` stops with
    ///     `FluxPipelineError.cancelled`.
    /// - Throws: `FluxPipelineError.invalidSetting` for settings the model cannot use, and the stages' errors.
    public static func run(_ pipeline: FluxPipeline, prompts: [String], template: FluxPipeline.Configuration,
                           progress: ((Int, FluxPipelineProgress) -> FluxPipelineProgressReply)? = nil) throws {
        for (index, prompt) in prompts.enumerated() {
            var configuration = template
            configuration.prompts = [prompt]
            configuration.imagesPerPrompt = 1
            configuration.seed = UInt64(index)
            let settings = try configuration.resolved(for: pipeline.transformerConfig)
            let handler: FluxPipelineProgressHandler? = progress.map { report in { report(index, $0) } }
            let embeddings = try pipeline.encode(settings, progress: handler)
            _ = try pipeline.denoise(embeddings, settings, progress: handler)
        }
    }
}
