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
            pipeline folder (its transformer/ is used), a Nunchaku legacy folder (transformer_blocks.safetensors + \
            unquantized_layers.safetensors + config.json), or one .safetensors file whose metadata holds the config \
            (Nunchaku merged files, e.g. svdq-int4_r32-flux.1-dev.safetensors).

            SVDQuant checkpoints (INT4 or NVFP4) run with Nunchaku's kernel numerics on the CPU and need \
            --dtype bf16; --dequantize runs their dense equivalent instead (no activation quantization), in either \
            dtype.

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

    @Flag(help: "Run SVDQuant layers as the dense layers they stand for (a reference), not with 4-bit activations.")
    var dequantize = false

    func run() throws {
        try reportingFailure(of: "run-transformer") {
            let clock = ContinuousClock()
            let files = try FluxModelFiles(path: model)
            let computeDType: DType = dtype == .f32 ? .f32 : .bf16
            var transformer: FluxTransformer?
            let loading = try clock.measure {
                transformer = try FluxTransformer(
                    files: files, computeDType: computeDType, quantizedLayers: dequantize ? .dequantized : .kernelExact)
            }
            let arguments = try SafeTensorsCheckpoint(path: inputs)
            var sample: Tensor?
            let running = try clock.measure { sample = try transformer?.forward(inputs: arguments) }
            guard let sample else { return }
            var writer = SafeTensorsWriter()
            try writer.add("sample", sample)
            try writer.write(to: output)
            print("\(files.source): \(try detectCheckpointFormat(files.weights).title), \(files.config.numLayers)+\(files.config.numSingleLayers) blocks, width \(files.config.innerDim)")
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
