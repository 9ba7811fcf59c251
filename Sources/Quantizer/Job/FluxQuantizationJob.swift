import Foundation
import NunchakuCore
import SafeTensors

/// Quantizes a diffusers FLUX transformer into a Nunchaku merged single-file checkpoint, one layer at a time:
/// read the layer's weights from the mapped checkpoint, quantize (SVDQuant W4A4 or AWQ W4A16), pack, write a shard
/// into the work folder; then stream every shard, the renamed qk-norm weights and the BF16 rest into the output and
/// delete the work folder. Memory stays at about one layer (two for a single block's `qkv_proj` and `mlp_fc1`, which
/// share their smoothing) plus the calibration rows.
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
    /// Layers that share their smoothing (`FluxQuantizationPlan.sharedInputGroups`, with
    /// `SVDQuantConfiguration.sharedSmoothing`) are quantized together when the first of them starts; each still
    /// gets its own events, with the group's time split by size.
    /// - Parameter progress: called as layers start and finish; an error it throws stops the run (finished layers
    ///   stay in the work folder for the next run).
    /// - Returns: the outcome of every layer, in plan order.
    public func run(progress: (FluxQuantizationEvent) throws -> Void = { _ in }) throws -> [LayerOutcome] {
        try workFolder.create()
        let layers = model.plan.layers
        var estimate = RemainingTimeEstimate(layers: layers)
        var outcomes: [LayerOutcome] = []
        for unit in quantizationUnits {
            try progress(.layerStarted(index: unit[0], count: layers.count, layer: layers[unit[0]]))
            let start = ContinuousClock.now
            let shards = try produceShards(unit)
            let seconds = (ContinuousClock.now - start).seconds
            let unitSize = unit.reduce(0) { $0 + RemainingTimeEstimate.units(layers[$1]) }
            for (member, index) in unit.enumerated() {
                let layer = layers[index]
                if member > 0 { try progress(.layerStarted(index: index, count: layers.count, layer: layer)) }
                let share = seconds * RemainingTimeEstimate.units(layer) / unitSize
                let (record, reused) = shards[member]
                let outcome = LayerOutcome(
                    index: index, count: layers.count, layer: layer, reused: reused, alpha: record.alpha,
                    relativeError: record.relativeError, seconds: share,
                    remainingSeconds: estimate.finished(layer, seconds: share, measured: !reused))
                outcomes.append(outcome)
                try progress(.layerFinished(outcome))
            }
        }
        try writeOutput(progress: progress)
        try workFolder.remove()
        return outcomes
    }

    /// The plan's layer indices in order, grouped into the units quantized together: a shared-input group at its
    /// first member (the plan keeps a group's members adjacent), every other layer alone.
    var quantizationUnits: [[Int]] {
        let groups = configuration.sharedSmoothing ? model.plan.sharedInputGroups : []
        let groupStarting = Dictionary(uniqueKeysWithValues: groups.map { ($0[0], $0) })
        var units: [[Int]] = []
        var index = 0
        while index < model.plan.layers.count {
            let unit = groupStarting[index] ?? [index]
            units.append(unit)
            index = unit.last! + 1
        }
        return units
    }

    /// The shards of one unit: all reused when each one's recorded settings match, otherwise quantized (a group
    /// with one smoothing) and written.
    private func produceShards(_ unit: [Int]) throws -> [(LayerShardRecord, reused: Bool)] {
        let layers = unit.map { model.plan.layers[$0] }
        let paths = zip(unit, layers).map { workFolder.shardPath(index: $0, name: $1.name) }
        let weights = try layers.map { try model.layerWeights($0) }
        let rows = layers.map { calibration?.activations[$0.name] }
        let group = unit.count > 1 ? groupFingerprint(layers, weights: weights) : nil
        let settings = layers.indices.map {
            settingsFingerprint(layers[$0], weight: weights[$0].weight, bias: weights[$0].bias, calibration: rows[$0], group: group)
        }
        let existing = paths.map { workFolder.existingShard(at: $0) }
        if zip(existing, settings).allSatisfy({ $0?.settings == $1 }) { return existing.map { ($0!, true) } }

        var produced: [(tensors: [String: Tensor], alpha: Double?, relativeError: Double)] = []
        switch layers[0].kind {
        case .w4a4:
            let inputs = try layers.indices.map { member -> W4A4LayerInput in
                guard case let .w4a4(inputKind) = layers[member].kind else {
                    throw NunchakuError.invalidArgument(context: "layer \(layers[member].name)", reason: "a shared-input group mixes W4A4 and AWQ layers")
                }
                return W4A4LayerInput(
                    name: layers[member].name, weight: weights[member].weight, outFeatures: layers[member].outFeatures,
                    inFeatures: layers[member].inFeatures, bias: weights[member].bias, calibration: rows[member], inputKind: inputKind)
            }
            // A unit of one layer is a group of one: exactly the lone layer's quantization.
            let quantized = try SVDQuantizer.quantize(sharingSmoothing: inputs, configuration: configuration, linearAlgebra: linearAlgebra)
            produced = try quantized.map { (try NunchakuLayerPacking.w4a4($0), $0.report.alpha, $0.report.relativeError) }
        case let .awqModulation(chunks):
            let layer = layers[0]
            let quantized = try AWQQuantizer.quantize(
                name: layer.name, weight: weights[0].weight, outFeatures: layer.outFeatures, inFeatures: layer.inFeatures,
                bias: weights[0].bias)
            produced = [(try NunchakuLayerPacking.awqModulation(quantized, chunks: chunks), nil, quantized.relativeWeightError)]
        }
        return try layers.indices.map { member in
            let record = LayerShardRecord(settings: settings[member], alpha: produced[member].alpha,
                                          relativeError: produced[member].relativeError)
            try workFolder.writeShard(at: paths[member], layer: layers[member].name, tensors: produced[member].tensors, record: record)
            return (record, false)
        }
    }

    /// The names and weight hashes of a shared-input group: a member's shard depends on its partners' weights too.
    private func groupFingerprint(_ layers: [PlannedLayer], weights: [(weight: [Float], bias: [Float])]) -> String {
        var hash = ContentHash()
        for (weight, bias) in weights {
            hash.combine(weight)
            hash.combine(bias)
        }
        return "smoothing shared by \(layers.map(\.name).joined(separator: " + ")) \(hash.hex)"
    }

    /// Everything a layer's shard depends on, as text: the format version of this writer, the layer's kind and
    /// shape, the quantizer settings, and hashes of its weights, bias and calibration rows.
    func settingsFingerprint(
        _ layer: PlannedLayer, weight: [Float], bias: [Float], calibration: CalibrationActivations?, group: String? = nil
    ) -> String {
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
            if let group { fields.append(group) }
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
