import NunchakuCore

/// Checks a layer's inputs before any long work starts; every error names the layer and what is wrong.
enum LayerValidation {
    /// W4A4: N and K multiples of 128, rank a multiple of 16 in 0...min(N, K), consistent sizes, finite values.
    static func validateW4A4(_ layer: W4A4LayerInput, configuration: SVDQuantConfiguration) throws {
        let context = "layer \(layer.name)"
        try validateMatrix(layer.weight, rows: layer.outFeatures, columns: layer.inFeatures, context: context)
        try validateW4A4Shape(
            outFeatures: layer.outFeatures, inFeatures: layer.inFeatures, configuration: configuration, context: context)
        try validateBias(layer.bias, count: layer.outFeatures, context: context)
        if let calibration = layer.calibration {
            guard calibration.width == layer.inFeatures else {
                throw NunchakuError.invalidArgument(
                    context: context,
                    reason: "calibration activations are \(calibration.width) wide but the layer has K = \(layer.inFeatures)")
            }
            guard calibration.values.count % calibration.width == 0, calibration.rows > 0 else {
                throw NunchakuError.invalidArgument(
                    context: context,
                    reason: "calibration activations hold \(calibration.values.count) values, not a positive multiple of K = \(calibration.width)")
            }
            try requireFinite(calibration.values, "\(context) calibration activations")
        }
    }

    /// Layers quantized with one smoothing vector must read the same input: at least one layer, equal K and input
    /// kind, and the same calibration activations (or none for all of them).
    static func validateSharedInput(_ layers: [W4A4LayerInput]) throws {
        guard let first = layers.first else {
            throw NunchakuError.invalidArgument(context: "shared smoothing", reason: "no layers given")
        }
        for layer in layers.dropFirst() {
            let context = "layers \(first.name) and \(layer.name) (one smoothing vector)"
            guard layer.inFeatures == first.inFeatures else {
                throw NunchakuError.invalidArgument(
                    context: context, reason: "K differs: \(first.inFeatures) against \(layer.inFeatures)")
            }
            guard layer.inputKind == first.inputKind else {
                throw NunchakuError.invalidArgument(
                    context: context, reason: "input kinds differ: \(first.inputKind) against \(layer.inputKind)")
            }
            guard layer.calibration?.values == first.calibration?.values else {
                throw NunchakuError.invalidArgument(
                    context: context, reason: "their calibration activations differ, so they do not read the same input")
            }
        }
    }

    /// The checks that need only the layer's shape: N and K multiples of 128, a rank that fits, sane search settings.
    static func validateW4A4Shape(
        outFeatures: Int, inFeatures: Int, configuration: SVDQuantConfiguration, context: String
    ) throws {
        for (dimension, value) in [("N (out features)", outFeatures), ("K (in features)", inFeatures)]
        where value % 128 != 0 {
            throw NunchakuError.invalidArgument(
                context: context, reason: "\(dimension) = \(value) is not a multiple of 128, as W4A4 needs")
        }
        let rank = configuration.rank
        guard rank >= 0, rank % 16 == 0, rank <= min(outFeatures, inFeatures) else {
            throw NunchakuError.invalidArgument(
                context: context,
                reason: "rank \(rank) must be a multiple of 16 between 0 and min(N, K) = \(min(outFeatures, inFeatures))")
        }
        guard configuration.smoothingGridPoints >= 2, configuration.lowRankRounds >= 1, configuration.objectiveRows >= 1 else {
            throw NunchakuError.invalidArgument(
                context: context,
                reason: "configuration needs smoothingGridPoints ≥ 2, lowRankRounds ≥ 1 and objectiveRows ≥ 1")
        }
    }

    /// AWQ W4A16: K a multiple of 64, N a multiple of 4, consistent sizes, finite values.
    static func validateAWQ(name: String, weight: [Float], outFeatures: Int, inFeatures: Int, bias: [Float]?) throws {
        let context = "layer \(name)"
        try validateMatrix(weight, rows: outFeatures, columns: inFeatures, context: context)
        guard inFeatures % AWQQuantizer.groupSize == 0 else {
            throw NunchakuError.invalidArgument(
                context: context, reason: "K (in features) = \(inFeatures) is not a multiple of 64, as AWQ W4A16 needs")
        }
        guard outFeatures % 4 == 0 else {
            throw NunchakuError.invalidArgument(
                context: context, reason: "N (out features) = \(outFeatures) is not a multiple of 4, as AWQ W4A16 needs")
        }
        try validateBias(bias, count: outFeatures, context: context)
    }

    private static func validateMatrix(_ weight: [Float], rows: Int, columns: Int, context: String) throws {
        guard rows > 0, columns > 0, weight.count == rows * columns else {
            throw NunchakuError.shapeMismatch(context: "\(context) weight", expected: [rows, columns], actual: [weight.count])
        }
        try requireFinite(weight, "\(context) weight")
    }

    private static func validateBias(_ bias: [Float]?, count: Int, context: String) throws {
        guard let bias else { return }
        guard bias.count == count else {
            throw NunchakuError.shapeMismatch(context: "\(context) bias", expected: [count], actual: [bias.count])
        }
        try requireFinite(bias, "\(context) bias")
    }

    private static func requireFinite(_ values: [Float], _ context: String) throws {
        if let index = values.firstIndex(where: { !$0.isFinite }) {
            throw NunchakuError.invalidArgument(
                context: context, reason: "element \(index) is \(values[index]) (NaN and Inf are not accepted)")
        }
    }
}
