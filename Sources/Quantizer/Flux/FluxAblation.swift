import NunchakuCore

extension FluxSourceModel {
    /// A W4A4 layer of this model for `QuantizationAblation.run`: its full-precision weights and its calibration rows,
    /// the even rows to calibrate on and the odd rows held out for measuring.
    /// - Throws: `NunchakuError` when `name` is not a W4A4 layer of the plan, or it has fewer than 2 calibration rows.
    public func ablationLayer(named name: String, calibration: CalibrationSet) throws -> AblationLayer {
        guard let layer = plan.w4a4Layers.first(where: { $0.name == name }), case let .w4a4(inputKind) = layer.kind else {
            let examples = plan.w4a4Layers.prefix(3).map(\.name).joined(separator: ", ")
            throw NunchakuError.invalidArgument(context: name, reason: "is not a W4A4 layer of this model (e.g. \(examples))")
        }
        guard let rows = calibration.activations[name], rows.width == layer.inFeatures, rows.rows >= 2 else {
            throw NunchakuError.invalidArgument(
                context: name, reason: "the ablation needs at least 2 calibration rows of width \(layer.inFeatures) for this layer")
        }
        var even: [Float] = [], odd: [Float] = []
        for row in 0..<rows.rows {
            let values = rows.values[(row * rows.width)..<((row + 1) * rows.width)]
            if row % 2 == 0 { even += values } else { odd += values }
        }
        let (weight, bias) = try layerWeights(layer)
        return AblationLayer(
            name: name, weight: weight, bias: bias, outFeatures: layer.outFeatures, inFeatures: layer.inFeatures,
            calibration: even, evaluation: odd, inputKind: inputKind)
    }
}
