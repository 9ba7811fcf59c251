import ArgumentParser
import Foundation
import Nunchaku

/// `nunchaku run-transformer`: one FLUX transformer forward on saved inputs.
struct RunTransformerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-transformer",
        abstract: "Run one FLUX transformer forward on inputs from a safetensors file.",
        discussion: """
            --model is a diffusers transformer folder (config.json + diffusion_pytorch_model*.safetensors), a \
            pipeline folder (its transformer/ is used), or one .safetensors file whose metadata holds the config.

            --inputs holds the forward arguments under diffusers' names: hidden_states [B, N, in_channels], \
            encoder_hidden_states [B, T, joint_attention_dim], pooled_projections [B, pooled_projection_dim], \
            timestep [B] (sigma in [0, 1]), guidance [B] (models with guidance_embeds only), img_ids [N, 3], \
            txt_ids [T, 3]. scripts/parity/flux_transformer_reference.py --model-dir writes such a file.

            The output file holds `sample` [B, N, patch² · out_channels] in the compute dtype. With --compare, \
            the relative error ‖ours − ref‖/‖ref‖ against that file's `sample` is printed.
            """
    )

    enum Device: String, ExpressibleByArgument, CaseIterable { case cpu }
    enum ComputeType: String, ExpressibleByArgument, CaseIterable { case f32, bf16 }

    @Option(help: "The transformer: a folder or a .safetensors file.")
    var model: String

    @Option(help: "A .safetensors file with the forward arguments.")
    var inputs: String

    @Option(help: "Where to write the output `sample` (.safetensors).")
    var output: String

    @Option(help: "Where to run: cpu.")
    var device: Device = .cpu

    @Option(help: "Compute dtype: f32 (exact) or bf16 (every op output rounded to bf16).")
    var dtype: ComputeType = .f32

    @Option(help: "A .safetensors file whose `sample` to compare the output with.")
    var compare: String?

    func run() throws {
        try reportingFailure(of: "run-transformer") {
            let clock = ContinuousClock()
            let files = try FluxModelFiles(path: model)
            guard let layout = FluxCheckpointLayout.detect(in: files.weights) else {
                throw ValidationError("\(files.source) has no FLUX block weights (no transformer_blocks.0 or single_transformer_blocks.0 projection)")
            }
            if files.weights.tensorNames.contains(where: { $0.hasSuffix(".qweight") }) {
                throw ValidationError("\(files.source) is an SVDQuant (quantized) checkpoint; this command runs unquantized weights only for now")
            }
            let computeDType: DType = dtype == .f32 ? .f32 : .bf16
            var transformer: FluxTransformer?
            let loading = try clock.measure {
                transformer = try FluxTransformer(
                    config: files.config, weights: files.weights, layout: layout, computeDType: computeDType, source: files.source)
            }
            let arguments = try SafeTensorsCheckpoint(path: inputs)
            var sample: Tensor?
            let running = try clock.measure { sample = try transformer?.forward(inputs: arguments) }
            guard let sample else { return }
            var writer = SafeTensorsWriter()
            try writer.add("sample", sample)
            try writer.write(to: output)
            print("\(files.source): \(layout) layout, \(files.config.numLayers)+\(files.config.numSingleLayers) blocks, width \(files.config.innerDim)")
            print("loaded in \(format(loading)), forward (\(device.rawValue), \(dtype.rawValue)) in \(format(running))")
            print("wrote sample \(sample.shape) \(sample.dtype) to \(output)")
            if let compare {
                let reference = try SafeTensorsCheckpoint(path: compare).tensor(named: "sample")
                print("relative error against \(compare): \(try Comparison.relativeError(sample, reference))")
            }
        }
    }

    private func format(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        return seconds < 1 ? "\((seconds * 1e4).rounded() / 10) ms" : "\((seconds * 1e3).rounded() / 1e3) s"
    }

}
