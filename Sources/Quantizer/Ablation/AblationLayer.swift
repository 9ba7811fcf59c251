/// A linear layer to run the ablation on: its weights, rows to calibrate on, and held-out rows to measure on.
public struct AblationLayer: Sendable {
    public let name: String
    /// [N, K].
    public let weight: [Float]
    /// [N].
    public let bias: [Float]
    public let outFeatures: Int
    public let inFeatures: Int
    /// [rows, K] calibration activations.
    public let calibration: [Float]
    /// [evaluationRows, K] held-out activations.
    public let evaluation: [Float]
    public let inputKind: LinearInputKind

    public init(
        name: String, weight: [Float], bias: [Float], outFeatures: Int, inFeatures: Int, calibration: [Float],
        evaluation: [Float], inputKind: LinearInputKind = .general
    ) {
        self.name = name
        self.weight = weight
        self.bias = bias
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.calibration = calibration
        self.evaluation = evaluation
        self.inputKind = inputKind
    }

    /// The number of held-out rows.
    public var evaluationRows: Int { evaluation.count / inFeatures }
}

extension SyntheticLayer {
    /// This layer, its calibration and evaluation rows, for `QuantizationAblation.run`.
    public var ablationLayer: AblationLayer {
        AblationLayer(
            name: "synthetic \(specification.outFeatures)x\(specification.inFeatures)", weight: weight, bias: bias,
            outFeatures: specification.outFeatures, inFeatures: specification.inFeatures, calibration: calibration,
            evaluation: evaluation)
    }
}
