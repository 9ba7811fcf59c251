import ArgumentParser
import Foundation
import Nunchaku

/// `nunchaku lora`: LoRA files for FLUX (docs/lora.md).
struct LoRACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora",
        abstract: "Inspect LoRA files and convert them to Nunchaku's format.",
        subcommands: [LoRAInspectCommand.self, LoRAConvertCommand.self]
    )
}

/// `nunchaku lora inspect LORA`: the file's family, pairs, and the layers of a FLUX model it touches.
struct LoRAInspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a LoRA file's naming family, ranks and the FLUX layers it changes.",
        discussion: """
            Families: diffusers/PEFT (lora_A/lora_B, with or without the transformer. prefix), kohya \
            (lora_unet_…lora_down/lora_up + alpha), ComfyUI (diffusion_model.…), XLabs (processor.…), BFL \
            original names. The layers are those of a model of --config, in the diffusers layout and in \
            Nunchaku's (fused q/k/v, split single-block proj_out).
            """
    )

    @Argument(help: "The LoRA .safetensors file.")
    var lora: String

    @Option(help: "The model the layers are listed for: flux-dev, flux-schnell, or a config.json path.")
    var config = "flux-dev"

    func run() throws {
        try reportingFailure(of: "lora inspect") {
            print(try LoRASummary.text(LoRAFile(path: lora), config: FluxConfig.named(config), configName: config))
        }
    }
}

/// `nunchaku lora convert LORA --base SVDQUANT -o OUT`: Nunchaku's converted-LoRA file for one checkpoint.
struct LoRAConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Write a LoRA in Nunchaku's converted format for an SVDQuant checkpoint.",
        discussion: """
            The LoRA's ranks are merged onto the checkpoint's low-rank branches (what \
            `python -m nunchaku.lora.flux.convert` writes): W4A4 layers get lora_down/lora_up holding the SVD \
            ranks and the LoRA's, packed like the checkpoint; AWQ adaLN layers lora_down/lora_up; unquantized \
            layers diffusers lora_A/lora_B. --strength is folded in.
            """
    )

    @Argument(help: "The LoRA .safetensors file (any supported family).")
    var lora: String

    @Option(help: "The SVDQuant checkpoint the LoRA is for (merged file or folder).")
    var base: String

    @Option(name: .shortAndLong, help: "The converted .safetensors file to write.")
    var output: String

    @Option(help: "Strength folded into the converted weights.")
    var strength: Float = 1

    func run() throws {
        try reportingFailure(of: "lora convert") {
            let file = try LoRAFile(path: lora)
            let tensors = try NunchakuLoRAExport.convert(file, strength: strength, base: FluxModelFiles(path: base))
            var writer = SafeTensorsWriter(metadata: [
                "format": "pt", "nunchaku_lora": "converted", "source_lora": lora, "source_format": file.format.rawValue,
                "base": base, "strength": "\(strength)",
            ])
            for name in tensors.keys.sorted() { try writer.add(name, tensors[name]!) }
            try writer.write(to: output)
            print("\(lora) (\(file.format), \(file.pairs.count) pairs) → \(output): \(tensors.count) tensors for \(tensors.count / 2) layers of \(base)")
        }
    }
}

/// A `--lora FILE[:STRENGTH]` argument (strength 1 when absent).
struct LoRAArgument: ExpressibleByArgument {
    let path: String
    let strength: Float

    init?(argument: String) {
        if let colon = argument.lastIndex(of: ":"), let strength = Float(argument[argument.index(after: colon)...]), strength.isFinite {
            path = String(argument[..<colon])
            self.strength = strength
        } else {
            path = argument
            strength = 1
        }
    }
}

extension LoRAArgument {
    /// Reads the file and checks that it fits a model of `config` (before a long model load).
    func check(against config: FluxConfig) throws {
        _ = try FluxLoRALayerMap.layersTouched(by: LoRAFile(path: path), config: config, layout: .diffusers)
    }
}

extension LoRAStack {
    /// Reads and applies each `--lora`, printing what each touches.
    func apply(_ arguments: [LoRAArgument]) throws {
        for argument in arguments {
            let file = try LoRAFile(path: argument.path)
            let id = try add(file, strength: argument.strength)
            let layers = applied.first { $0.id == id }?.layers.count ?? 0
            print("LoRA \(argument.path) (\(file.format), \(file.pairs.count) pairs) at strength \(argument.strength): \(layers) layers")
        }
    }
}

/// The text `nunchaku lora inspect` (and `nunchaku inspect` on a LoRA file) prints.
enum LoRASummary {
    /// The summary for a FLUX.1-dev-sized model, or why the file cannot be read as a LoRA.
    static func forInspect(_ path: String) -> String {
        do {
            return text(try LoRAFile(path: path), config: try FluxConfig.named("flux-dev"), configName: "flux-dev")
        } catch {
            return "LoRA: cannot be read: \(error)"
        }
    }

    static func text(_ lora: LoRAFile, config: FluxConfig, configName: String) -> String {
        var lines = ["LoRA: \(lora.format) naming, \(lora.pairs.count) pairs"]
        let ranks = Set(lora.pairs.map(\.rank)).sorted(), scales = Set(lora.pairs.map(\.scale)).sorted()
        lines.append("ranks: \(ranks.map(String.init).joined(separator: ", ")); scales (alpha / rank): \(scales.map { "\($0)" }.joined(separator: ", "))")
        if !lora.ignoredKeys.isEmpty { lines.append("text-encoder keys set aside: \(lora.ignoredKeys.count)") }
        for layout in FluxCheckpointLayout.allCases {
            do {
                let layers = try FluxLoRALayerMap.layersTouched(by: lora, config: config, layout: layout)
                lines.append("\(layout) layout of \(configName): \(layers.count) layers")
                lines += layers.map { "  \($0.name): rank \($0.rank)" }
            } catch let error as LoRAError {
                lines.append("\(layout) layout of \(configName): does not fit (\(error.problems.count) keys), e.g. \(error.problems[0])")
            } catch {
                lines.append("\(layout) layout of \(configName): \(error)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
