import Foundation
import Models
import NunchakuCore
import Pipelines
import Quantizer
import SafeTensors

/// The transformers `nunchaku eval` compares (SVDQuant's quality table on the demo model).
public enum EvaluationVariant: String, Sendable, CaseIterable, Codable {
    case bf16 = "BF16"
    /// The BF16 transformer with outlier channels (`OutlierChannels`): the same function, a harder model to quantize.
    case bf16Outliers = "BF16 + outlier channels"
    case svdquantINT4 = "SVDQuant INT4"
    case svdquantNVFP4 = "SVDQuant NVFP4"
    case naiveW4A4 = "W4A4 RTN (naive)"
    case w4a16 = "W4A16"

    /// How the variant's transformer is made; `outliers` says whether the quantized variants start from the
    /// outlier-channel copy of the BF16 transformer.
    public func provenance(outliers: OutlierChannels?) -> String {
        let from = outliers.map { " from the BF16 + outlier channels model (\($0.summary))" } ?? ""
        return switch self {
        case .bf16: "the folder's transformer/ (BF16)"
        case .bf16Outliers: "transformer/ with outlier channels (\(outliers?.summary ?? "none")): the same function"
        case .svdquantINT4 where outliers == nil:
            "the shipped \(DemoModelLocator.int4TransformerFile) (nunchaku quantize, rank 32), kernel-exact CPU layers"
        case .svdquantINT4: "quantized now by FluxQuantizationJob (INT4, rank 32, the folder's calibration inputs)\(from), kernel-exact CPU layers"
        case .svdquantNVFP4: "quantized now by FluxQuantizationJob (NVFP4, rank 32, same calibration)\(from), kernel-exact CPU layers"
        case .naiveW4A4: "INT4 g64 weight RTN + runtime activation quantization, no smoothing, no low rank (simulated)\(from)"
        case .w4a16: "4-bit g64 weights (AWQ-style asymmetric RTN) on every block linear, BF16 activations (simulated)\(from)"
        }
    }
}

/// `nunchaku eval --outlier-factor F --outlier-channels N`: outlier channels to put into the BF16 transformer before
/// the quantized variants are made from it (`OutlierChannels`, spread evenly over the width).
public struct OutlierStress: Sendable {
    public let factor: Float
    public let channelCount: Int

    public init(factor: Float, channelCount: Int) {
        self.factor = factor
        self.channelCount = channelCount
    }
}

/// Builds the pipeline of each evaluation variant from the demo folder, all on the CPU in bf16.
struct EvaluationPipelines {
    let folder: FluxPipelineFolder
    let base: FluxPipeline
    let scratch: String
    /// The BF16 transformer the quantized variants start from: the folder's, or its outlier-channel copy in `scratch`.
    let quantizationSource: String
    let outliers: OutlierChannels?

    /// - Parameter stress: when set, `transformer/` with that many outlier channels is written into `scratch` and
    ///   the quantized variants are made from it (the shipped INT4 file is then not used).
    init(root: String, scratch: String, stress: OutlierStress? = nil) throws {
        folder = try FluxPipelineFolder(root: root)
        base = try FluxPipelineLoader.load(folder: folder, options: FluxPipelineLoadOptions(device: .cpu, dtype: .bf16))
        self.scratch = scratch
        if let stress {
            let source = try FluxSourceModel(path: folder.path("transformer"))
            let outliers = try OutlierChannels(
                factor: stress.factor, channels: OutlierChannels.spread(count: stress.channelCount, width: source.config.innerDim))
            quantizationSource = (scratch as NSString).appendingPathComponent("transformer-outliers")
            try outliers.write(source, to: quantizationSource)
            self.outliers = outliers
        } else {
            outliers = nil
            quantizationSource = folder.path("transformer")
        }
    }

    func pipeline(for variant: EvaluationVariant, log: (String) -> Void) throws -> FluxPipeline {
        switch variant {
        case .bf16:
            return base
        case .bf16Outliers:
            return try withTransformerFile(quantizationSource)
        case .svdquantINT4 where outliers == nil:
            return try withTransformerFile(folder.path(DemoModelLocator.int4TransformerFile))
        case .svdquantINT4:
            return try withTransformerFile(try quantize(.int4, log: log))
        case .svdquantNVFP4:
            return try withTransformerFile(try quantize(.nvfp4, log: log))
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
        let source = try FluxSourceModel(path: quantizationSource)
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

    /// SVDQuant rank 32 of `quantizationSource` in `format`, calibrated on the folder's calibration inputs exactly
    /// as the shipped INT4 file was (`nunchaku quantize --calibration-inputs …`), written into the scratch folder.
    private func quantize(_ format: W4A4Format, log: (String) -> Void) throws -> String {
        let source = try FluxSourceModel(path: quantizationSource)
        let calibrationFolder = folder.path(DemoModelLocator.calibrationFolder)
        let inputPaths = try FileManager.default.contentsOfDirectory(atPath: calibrationFolder)
            .filter { $0.hasSuffix(".safetensors") }.sorted()
            .map { (calibrationFolder as NSString).appendingPathComponent($0) }
        guard !inputPaths.isEmpty else {
            throw NunchakuError.io(path: calibrationFolder, reason: "no calibration inputs (*.safetensors) to quantize \(format) with")
        }
        let inputs = try inputPaths.map { try SafeTensorsCheckpoint(path: $0) as any TensorProvider }
        let calibration = try CalibrationCollection.collect(model: source, inputs: inputs, seed: 0xCA11B)
        // Nunchaku's file names: svdq-int4_r32-…, svdq-fp4_r32-….
        let output = (scratch as NSString).appendingPathComponent("svdq-\(format == .nvfp4 ? "fp4" : "int4")_r32-flux-shapes.safetensors")
        let job = try FluxQuantizationJob(
            model: source, output: output, configuration: SVDQuantConfiguration(format: format, rank: 32),
            calibration: calibration)
        var done = 0
        _ = try job.run { event in
            if case .layerFinished = event {
                done += 1
                if done % 10 == 0 { log("\(format) quantization: \(done)/\(source.plan.layers.count) layers") }
            }
        }
        return output
    }
}
