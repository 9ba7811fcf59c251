import Foundation
import NunchakuCore

extension FluxConfig {
    /// The configs known by name: the real FLUX.1-dev (guidance embedder) and FLUX.1-schnell transformers
    /// (19 + 38 blocks, 24 heads of 128, research/diffusion-architectures.md §1.1).
    public static let presets: [String: FluxConfig] = [
        "flux-dev": FluxConfig(guidanceEmbeds: true),
        "flux-schnell": FluxConfig(guidanceEmbeds: false),
    ]

    /// A preset name (`flux-dev`, `flux-schnell`) or the path of a diffusers `config.json`.
    /// - Throws: `NunchakuError` when it is neither a preset nor a readable, valid config file.
    public static func named(_ nameOrPath: String) throws -> FluxConfig {
        if let preset = presets[nameOrPath] { return preset }
        guard FileManager.default.fileExists(atPath: nameOrPath) else {
            throw NunchakuError.invalidArgument(
                context: nameOrPath, reason: "neither a config preset (\(presets.keys.sorted().joined(separator: ", "))) nor a config.json file")
        }
        guard let data = FileManager.default.contents(atPath: nameOrPath) else {
            throw NunchakuError.io(path: nameOrPath, reason: "cannot be read")
        }
        return try decode(data, source: nameOrPath)
    }
}
