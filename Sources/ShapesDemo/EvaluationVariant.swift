import Foundation
import Models
import NunchakuCore
import Pipelines
import Quantizer
import SafeTensors

/// The transformers `nunchaku eval` compares (SVDQuant's quality table on the demo model).
public enum EvaluationVariant: String, Sendable, CaseIterable, Codable {
    case bf16 = "BF16"
    case svdquantINT4 = "SVDQuant INT4"
    case svdquantNVFP4 = "SVDQuant NVFP4"
    case naiveW4A4 = "W4A4 RTN (naive)"
    case w4a16 = "W4A16"

    /// How the variant's transformer is made.
    public var provenance: String {
        switch self {
        case .bf16: "the folder's transformer/ (BF16)"
        case .svdquantINT4: "the shipped \(DemoModelLocator.int4TransformerFile) (nunchaku quantize, rank 32), kernel-exact CPU layers"
        case .svdquantNVFP4: "quantized now by FluxQuantizationJob (NVFP4, rank 32, same calibration), kernel-exact CPU layers"
        case .naiveW4A4: "INT4 g64 weight RTN + runtime activation quantization, no smoothing, no low rank (simulated)"
        case .w4a16: "4-bit g64 weights (AWQ-style asymmetric RTN) on every block linear, BF16 activations (simulated)"
        }
    }
}

/// Builds the pipeline of each evaluation variant from the demo folder, all on the CPU in bf16.
struct EvaluationPipelines {
    let folder: FluxPipelineFolder
    let base: FluxPipeline
    let scratch: String

    init(root: String, scratch: String) throws {
        folder = try FluxPipelineFolder(root: root)
        base = try FluxPipelineLoader.load(folder: folder, options: FluxPipelineLoadOptions(device: .cpu, dtype: .bf16))
        self.scratch = scratch
    }

    func pipeline(for variant: EvaluationVariant, log: (String) -> Void) throws -> FluxPipeline {
        switch variant {
        case .bf16:
            return base
        case .svdquantINT4:
            return try withTransformerFile(folder.path(DemoModelLocator.int4TransformerFile))
        case .svdquantNVFP4:
            return try withTransformerFile(try quantizeNVFP4(log: log))
        case .naiveW4A4:
            return try simulated(.naiveW4A4)
        case .w4a16:
            return try simulated(.w4a16)
        }
    }

    private func withTransformerFile(_ path: String) throws -> FluxPipeline {
        let files = try FluxModelFiles(path: path)
        return try withTransformer(try FluxTransformer(files: files, computeDType: .bf16, quantizedLayers: .kernelExact))
    }

    private func simulated(_ scheme: SimulatedQuantizationFactory.Scheme) throws -> FluxPipeline {
        let source = try FluxSourceModel(path: folder.path("transformer"))
        let transformer = try FluxTransformer(
            config: source.config, weights: source.weights, layout: .diffusers, computeDType: .bf16,
            linearFactory: SimulatedQuantizationFactory(scheme: scheme), source: source.source)
        return try withTransformer(transformer)
    }

    /// The BF16 pipeline with another transformer (text encoders, VAE and scheduler shared).
    private func withTransformer(_ transformer: any FluxDenoising) throws -> FluxPipeline {
        var models = base.models
        models.transformer = transformer
        return try FluxPipeline(models: models, tokenizers: base.tokenizers, scheduler: base.scheduler, dtype: base.dtype)
    }

    /// SVDQuant NVFP4 rank 32 of the BF16 transformer, calibrated on the folder's calibration inputs exactly as
    /// the shipped INT4 file was (`nunchaku quantize --calibration-inputs …`), written into the scratch folder.
    private func quantizeNVFP4(log: (String) -> Void) throws -> String {
        let source = try FluxSourceModel(path: folder.path("transformer"))
        let calibrationFolder = folder.path(DemoModelLocator.calibrationFolder)
        let inputPaths = try FileManager.default.contentsOfDirectory(atPath: calibrationFolder)
            .filter { $0.hasSuffix(".safetensors") }.sorted()
            .map { (calibrationFolder as NSString).appendingPathComponent($0) }
        guard !inputPaths.isEmpty else {
            throw NunchakuError.io(path: calibrationFolder, reason: "no calibration inputs (*.safetensors) to quantize NVFP4 with")
        }
        let inputs = try inputPaths.map { try SafeTensorsCheckpoint(path: $0) as any TensorProvider }
        let calibration = try CalibrationCollection.collect(model: source, inputs: inputs, seed: 0xCA11B)
        let output = (scratch as NSString).appendingPathComponent("svdq-fp4_r32-flux-shapes.safetensors")
        let job = try FluxQuantizationJob(
            model: source, output: output, configuration: SVDQuantConfiguration(format: .nvfp4, rank: 32),
            calibration: calibration)
        var done = 0
        _ = try job.run { event in
            if case .layerFinished = event {
                done += 1
                if done % 10 == 0 { log("NVFP4 quantization: \(done)/\(source.plan.layers.count) layers") }
            }
        }
        return output
    }
}
