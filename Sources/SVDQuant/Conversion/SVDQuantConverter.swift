import Foundation
import NunchakuCore
import SafeTensors

/// Where a conversion is, for progress reports.
public struct SVDQuantConversionProgress: Sendable, Equatable {
    public enum Stage: Sendable, Equatable {
        /// Converting quantized layer number `layersDone + 1` (`layer`).
        case converting(layer: String)
        /// Every layer converted; writing the output file of this many bytes.
        case writing(bytes: Int)
    }

    public let stage: Stage
    public let layersDone: Int
    public let layerCount: Int
}

/// What a conversion wrote.
public struct SVDQuantConversionReport: Sendable {
    public let target: SVDQuantTargetFormat
    /// The files written (the weights file, plus `config.json` for Nunchaku-Lite).
    public let files: [String]
    public let w4a4Layers: Int
    public let awqLayers: Int
    /// Tensors outside the quantized layers, copied unchanged.
    public let denseTensors: Int
    public let tensorCount: Int
    /// Bytes of tensor data in the weights file.
    public let tensorBytes: Int
    /// What was filled in, dropped or approximated, one line each.
    public let notes: [String]
}

/// Converts an SVDQuant checkpoint between the formats (docs/svdquant-checkpoints.md). The lossless targets
/// (`nunchaku`, `canonical`, `nunchaku-lite`) move the same bits; `dense` dequantizes. Every non-quantized tensor is
/// copied unchanged.
///
/// Layers are converted one at a time into a scratch file beside the output, which is then streamed into the output
/// by `SafeTensorsWriter`: memory holds one layer, the disk briefly holds the output twice.
public enum SVDQuantConverter {
    /// Writes `checkpoint` as `target` to `output` (a `.safetensors` file; a folder for `nunchakuLite`).
    /// - Parameters:
    ///   - denseDType: the dtype of dequantized weights for `dense` (bf16, f16 or f32).
    ///   - progress: called before each quantized layer and before the final write.
    /// - Throws: `SVDQuantCheckpointError` (bad layer values name the layer and tensor; conversions a target cannot
    ///   express; an unusable output path), `SafeTensorsError` for I/O.
    @discardableResult
    public static func convert(
        _ checkpoint: SVDQuantCheckpoint, to target: SVDQuantTargetFormat, output: String, denseDType: DType = .bf16,
        progress: ((SVDQuantConversionProgress) -> Void)? = nil
    ) throws -> SVDQuantConversionReport {
        guard [.bf16, .f16, .f32].contains(denseDType) else {
            throw SVDQuantCheckpointError.invalidOutput(path: output, reason: "dense weights can be bf16, f16 or f32, not \(denseDType)")
        }
        let plan = ConversionTarget(format: target, checkpoint: checkpoint)
        let weightsPath = target == .nunchakuLite ? try prepareLiteFolder(output) + "/diffusion_pytorch_model.safetensors" : output
        if target != .nunchakuLite { try checkFileOutput(output) }
        let spool = try TensorSpool(besides: weightsPath)
        var spooled: [(name: String, slot: TensorSpool.Slot)] = []
        var notes = ConversionNotes()
        var computeDType: DType?
        let layerCount = checkpoint.w4a4LayerNames.count + checkpoint.awqLayerNames.count
        var layersDone = 0
        func report(_ layer: String) {
            progress?(SVDQuantConversionProgress(stage: .converting(layer: layer), layersDone: layersDone, layerCount: layerCount))
            layersDone += 1
        }
        for name in checkpoint.w4a4LayerNames {
            report(name)
            let weights = try checkpoint.w4a4Weights(name)
            computeDType = computeDType ?? weights.weightDType.dtype
            let outputs = target == .dense ? plan.denseOutputs(weights, dtype: denseDType) : try plan.w4a4Outputs(weights, notes: &notes)
            for (tensorName, tensor) in outputs { spooled.append((tensorName, try spool.append(tensor, name: tensorName))) }
        }
        for name in checkpoint.awqLayerNames {
            report(name)
            let weights = try checkpoint.awqWeights(name)
            computeDType = computeDType ?? weights.weightDType.dtype
            let outputs = target == .dense ? plan.denseOutputs(weights, dtype: denseDType) : try plan.awqOutputs(weights)
            for (tensorName, tensor) in outputs { spooled.append((tensorName, try spool.append(tensor, name: tensorName))) }
        }

        var writer = SafeTensorsWriter(metadata: plan.metadata())
        let converted = try spool.finish()
        var tensorBytes = spool.byteCount
        for (name, slot) in spooled { try writer.add(name, converted.tensor(slot, name: name)) }
        for name in checkpoint.denseTensorNames {
            let raw = try checkpoint.source.raw(checkpoint.denseFileName(name))
            try writer.add(plan.outputName(name), raw)
            tensorBytes += raw.byteCount
        }
        progress?(SVDQuantConversionProgress(stage: .writing(bytes: tensorBytes), layersDone: layersDone, layerCount: layerCount))
        try writer.write(to: weightsPath)
        var files = [weightsPath]
        if target == .nunchakuLite {
            let configPath = output + "/config.json"
            try writeText(plan.liteConfigJSON(computeDType: computeDType ?? .bf16), to: configPath)
            files.append(configPath)
        }
        var lines = notes.messages
        if target == .dense {
            lines.append("dense: every quantized layer was dequantized (lossy: 4-bit weights expanded, activation quantization dropped; the W4A4 low-rank branch is folded into the weight)")
        }
        if target == .nunchakuLite, checkpoint.model.family == .flux {
            lines.append("nunchaku-lite: FLUX keeps Nunchaku's fused QKV and interleaved adaLN outputs (module names of NunchakuFluxTransformer2DModelV2); diffusers' FluxTransformer2DModel cannot load it as is")
        }
        return SVDQuantConversionReport(
            target: target, files: files, w4a4Layers: checkpoint.w4a4LayerNames.count, awqLayers: checkpoint.awqLayerNames.count,
            denseTensors: checkpoint.denseTensorNames.count, tensorCount: writer.count, tensorBytes: tensorBytes, notes: lines)
    }

    /// A file output must not be a folder.
    private static func checkFileOutput(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw SVDQuantCheckpointError.invalidOutput(path: path, reason: "is a folder; this target writes one .safetensors file")
        }
    }

    /// Creates the Nunchaku-Lite output folder, refusing one that holds other weights files (a loader would read
    /// them together with the new one).
    private static func prepareLiteFolder(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw SVDQuantCheckpointError.invalidOutput(path: path, reason: "exists and is not a folder; nunchaku-lite writes a folder")
            }
            let others = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter {
                ($0.hasSuffix(".safetensors") || $0.hasSuffix(".safetensors.index.json")) && $0 != "diffusion_pytorch_model.safetensors"
            }
            guard others.isEmpty else {
                throw SVDQuantCheckpointError.invalidOutput(
                    path: path, reason: "already holds other weights (\(others.sorted().joined(separator: ", "))) that would be read with the new ones")
            }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw SVDQuantCheckpointError.invalidOutput(path: path, reason: "cannot create the folder: \(error)")
            }
        }
        return path
    }

    private static func writeText(_ text: String, to path: String) throws {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw SVDQuantCheckpointError.invalidOutput(path: path, reason: "cannot write: \(error)")
        }
    }
}
