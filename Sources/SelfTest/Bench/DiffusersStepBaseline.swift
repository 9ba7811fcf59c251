import Foundation
import NunchakuCore

/// The BF16 baseline steps that `scripts/diffusers_step_bench.py --json FILE` measures (diffusers'
/// FluxTransformer2DModel at FLUX.1-dev's config, batch 1, 512 text tokens, eager and `torch.compile`, per image
/// size), read by `nunchaku bench step --diffusers FILE` to print each of our steps' speed-up over them. Both time
/// the median step between CUDA events, so run on the same GPU they compare like for like.
public struct DiffusersStepBaseline: Sendable, Codable {
    /// One measured configuration.
    public struct Entry: Sendable, Codable {
        /// The image side in pixels (a multiple of 16; (size / 16)² image tokens).
        public let size: Int
        /// `eager` or `compile`.
        public let mode: String
        /// The median step time.
        public let ms: Double
        /// `torch.cuda.max_memory_allocated` over the timed steps, in GiB.
        public let peakGiB: Double

        enum CodingKeys: String, CodingKey {
            case size, mode, ms
            case peakGiB = "peak_gib"
        }
    }

    /// The GPU the baseline ran on (`torch.cuda.get_device_name()`).
    public let device: String
    public let results: [Entry]

    /// The modes the script measures.
    public static let modes = ["eager", "compile"]

    /// Reads and checks the JSON at `path`.
    /// - Throws: `NunchakuError.io` when the file cannot be read; `.invalidArgument` naming the file when it is not
    ///   the script's JSON, holds no results, or an entry has an unknown mode, a size that is not a positive multiple
    ///   of 16, or a time that is not a positive finite number of milliseconds.
    public init(path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw NunchakuError.io(path: path, reason: "cannot read the diffusers baseline: \(error.localizedDescription)")
        }
        do {
            self = try JSONDecoder().decode(Self.self, from: data)
        } catch {
            throw NunchakuError.invalidArgument(
                context: path, reason: "not the JSON of scripts/diffusers_step_bench.py (device, results: size, mode, ms, peak_gib): \(error)")
        }
        guard !results.isEmpty else { throw NunchakuError.invalidArgument(context: path, reason: "the baseline holds no results") }
        for (index, entry) in results.enumerated() {
            guard Self.modes.contains(entry.mode), entry.size > 0, entry.size % 16 == 0, entry.ms.isFinite, entry.ms > 0 else {
                throw NunchakuError.invalidArgument(
                    context: "\(path) results[\(index)]",
                    reason: "mode \(entry.mode), size \(entry.size), \(entry.ms) ms: expected mode eager or compile, a size that is a positive multiple of 16 and a positive time")
            }
        }
    }

    /// The step time of `mode` at the image size with `imageTokens` tokens (16-pixel patches of a square image),
    /// or nil when the baseline did not measure it.
    public func milliseconds(_ mode: String, imageTokens: Int) -> Double? {
        results.first { $0.mode == mode && ($0.size / 16) * ($0.size / 16) == imageTokens }?.ms
    }
}
