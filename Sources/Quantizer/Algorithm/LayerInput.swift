/// Calibration activations of one linear: the inputs it saw while the full-precision model ran, [rows, width].
public struct CalibrationActivations: Sendable {
    /// Row-major [rows, width].
    public let values: [Float]
    /// The number of input channels of each row; must equal the layer's K.
    public let width: Int

    public init(values: [Float], width: Int) {
        self.values = values
        self.width = width
    }

    /// The number of rows (0 when `width` is not positive).
    public var rows: Int { width > 0 ? values.count / width : 0 }
}

/// One W4A4 linear to quantize: its full-precision weight and bias, and optionally its calibration activations.
public struct W4A4LayerInput: Sendable {
    /// The layer's name (checkpoint key prefix), used in errors and progress reports.
    public let name: String
    /// [outFeatures, inFeatures] row-major.
    public let weight: [Float]
    public let outFeatures: Int
    public let inFeatures: Int
    /// [outFeatures], or nil for a layer without bias.
    public let bias: [Float]?
    /// The inputs the layer saw; nil means the smoothing is chosen from the weights alone.
    public let calibration: CalibrationActivations?
    public let inputKind: LinearInputKind

    public init(
        name: String, weight: [Float], outFeatures: Int, inFeatures: Int, bias: [Float]? = nil,
        calibration: CalibrationActivations? = nil, inputKind: LinearInputKind = .general
    ) {
        self.name = name
        self.weight = weight
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.bias = bias
        self.calibration = calibration
        self.inputKind = inputKind
    }
}
