import Foundation
import NunchakuCore
import SafeTensors

/// Quantizes a diffusers FLUX transformer into a Nunchaku merged single-file checkpoint, one layer at a time:
/// read the layer's weights from the mapped checkpoint, quantize (SVDQuant W4A4 or AWQ W4A16), pack, write a shard
/// into the work folder; then stream every shard, the renamed qk-norm weights and the BF16 rest into the output and
/// delete the work folder. Memory stays at about one layer plus the calibration rows.
///
/// Re-running after an interruption reuses every shard whose recorded settings match (same configuration, same
/// weights, same calibration rows); remove the work folder to start over.
public struct FluxQuantizationJob: Sendable {
    public let model: FluxSourceModel
    public let output: String
    public let configuration: SVDQuantConfiguration
    /// Activations for every W4A4 layer, or nil to choose the smoothing from the weights alone.
    public let calibration: CalibrationSet?
    public let workFolder: QuantizationWorkFolder
    public let linearAlgebra: any DenseLinearAlgebra

    /// Checks the configuration against every planned layer and the calibration against the plan.
    /// - Throws: `NunchakuError` naming the layer or calibration problem, before any work.
    public init(
        model: FluxSourceModel, output: String, configuration: SVDQuantConfiguration, calibration: CalibrationSet?,
        calibrationSource: String = "calibration", linearAlgebra: any DenseLinearAlgebra = DenseLinearAlgebraProvider.preferred()
    ) throws {
        try Self.check(configuration, plan: model.plan)
        try calibration?.validate(against: model.plan, source: calibrationSource)
        self.model = model
        self.output = output
        self.configuration = configuration
        self.calibration = calibration
        self.workFolder = QuantizationWorkFolder(output: output)
        self.linearAlgebra = linearAlgebra
    }

    /// Throws unless `configuration` suits every W4A4 layer of `plan` (rank a multiple of 16 from 16 to min(N, K),
    /// search settings in range); cheap, so callers can check before collecting calibration activations.
    public static func check(_ configuration: SVDQuantConfiguration, plan: FluxQuantizationPlan) throws {
        guard configuration.rank >= 16 else {
            throw NunchakuError.invalidArgument(
                context: "rank", reason: "\(configuration.rank) is too small: Nunchaku checkpoints have a low-rank branch of rank ≥ 16")
        }
        for layer in plan.w4a4Layers {
            try LayerValidation.validateW4A4Shape(
                outFeatures: layer.outFeatures, inFeatures: layer.inFeatures, configuration: configuration,
                context: "layer \(layer.name)")
        }
    }

    /// Runs every layer (reusing matching shards), then writes the output file and removes the work folder.
    /// - Parameter progress: called as layers start and finish; an error it throws stops the run (finished layers
    ///   stay in the work folder for the next run).
    /// - Returns: the outcome of every layer, in plan order.
    public func run(progress: (FluxQuantizationEvent) throws -> Void = { _ in }) throws -> [LayerOutcome] {
        try workFolder.create()
        let layers = model.plan.layers
        var estimate = RemainingTimeEstimate(layers: layers)
        var outcomes: [LayerOutcome] = []
        for (index, layer) in layers.enumerated() {
            try progress(.layerStarted(index: index, count: layers.count, layer: layer))
            let start = ContinuousClock.now
            let (record, reused) = try produceShard(index: index, layer: layer)
            let seconds = (ContinuousClock.now - start).seconds
            let outcome = LayerOutcome(
                index: index, count: layers.count, layer: layer, reused: reused, alpha: record.alpha,
                relativeError: record.relativeError, seconds: seconds,
                remainingSeconds: estimate.finished(layer, seconds: seconds, measured: !reused))
            outcomes.append(outcome)
            try progress(.layerFinished(outcome))
        }
        try writeOutput(progress: progress)
        try workFolder.remove()
        return outcomes
    }

    /// The shard of one layer: reused when its settings match, otherwise quantized and written.
    private func produceShard(index: Int, layer: PlannedLayer) throws -> (LayerShardRecord, reused: Bool) {
        let path = workFolder.shardPath(index: index, name: layer.name)
        let (weight, bias) = try model.layerWeights(layer)
        let rows = calibration?.activations[layer.name]
        let settings = settingsFingerprint(layer, weight: weight, bias: bias, calibration: rows)
        if let existing = workFolder.existingShard(at: path), existing.settings == settings { return (existing, true) }

        let tensors: [String: Tensor]
        let record: LayerShardRecord
        switch layer.kind {
        case let .w4a4(inputKind):
            let input = W4A4LayerInput(
                name: layer.name, weight: weight, outFeatures: layer.outFeatures, inFeatures: layer.inFeatures,
                bias: bias, calibration: rows, inputKind: inputKind)
            let quantized = try SVDQuantizer.quantize(input, configuration: configuration, linearAlgebra: linearAlgebra)
            tensors = try NunchakuLayerPacking.w4a4(quantized)
            record = LayerShardRecord(settings: settings, alpha: quantized.report.alpha, relativeError: quantized.report.relativeError)
        case let .awqModulation(chunks):
            let quantized = try AWQQuantizer.quantize(
                name: layer.name, weight: weight, outFeatures: layer.outFeatures, inFeatures: layer.inFeatures, bias: bias)
            tensors = try NunchakuLayerPacking.awqModulation(quantized, chunks: chunks)
            record = LayerShardRecord(settings: settings, alpha: nil, relativeError: quantized.relativeWeightError)
        }
        try workFolder.writeShard(at: path, layer: layer.name, tensors: tensors, record: record)
        return (record, false)
    }

    /// Everything a layer's shard depends on, as text: the format version of this writer, the layer's kind and
    /// shape, the quantizer settings, and hashes of its weights, bias and calibration rows.
    func settingsFingerprint(_ layer: PlannedLayer, weight: [Float], bias: [Float], calibration: CalibrationActivations?) -> String {
        var weights = ContentHash()
        weights.combine(weight)
        weights.combine(bias)
        var fields = ["writer 1", "layer \(layer.name)", "kind \(layer.kind)", "shape \(layer.outFeatures)x\(layer.inFeatures)",
                      "weights \(weights.hex)"]
        if case .w4a4 = layer.kind {
            let c = configuration
            fields += [
                "format \(c.format)", "rank \(c.rank)", "smoothing \(c.smoothing) grid \(c.smoothingGridPoints)",
                "rounds \(c.lowRankRounds)", "objective rows \(c.objectiveRows)",
                "svd \(c.svd.oversampling)/\(c.svd.powerIterations)/\(c.svd.seed) search \(c.searchPowerIterations)",
            ]
            if let calibration {
                var rows = ContentHash()
                rows.combine(calibration.values)
                fields.append("calibration \(calibration.rows)x\(calibration.width) \(rows.hex)")
            } else {
                fields.append("calibration none")
            }
        }
        return fields.joined(separator: "; ")
    }

    /// Streams the shards, the renamed qk-norm weights and the BF16 tensors outside the blocks into `output`.
    private func writeOutput(progress: (FluxQuantizationEvent) throws -> Void) throws {
        var writer = SafeTensorsWriter(metadata: NunchakuCheckpointMetadata.flux(
            configText: model.configText, format: configuration.format, rank: configuration.rank))
        for (index, layer) in model.plan.layers.enumerated() {
            let shard = try SafeTensorsFile(path: workFolder.shardPath(index: index, name: layer.name))
            for name in shard.tensorNames { try writer.add(name, try shard.raw(name)) }
        }
        for (from, to) in model.plan.renamedTensors { try writer.add(to, try bf16(from)) }
        for name in model.unquantizedTensorNames {
            let info = try model.weights.info(name)
            if [SafeTensorsDType.f32, .f16, .bf16, .f64].contains(info.dtype) {
                try writer.add(name, try bf16(name))
            } else {
                try writer.add(name, try model.weights.raw(name))
            }
        }
        try progress(.writingOutput(path: output, tensorCount: writer.count))
        try writer.write(to: output)
    }

    private func bf16(_ name: String) throws -> Tensor {
        try model.weights.tensor(name).converted(to: .bf16)
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
