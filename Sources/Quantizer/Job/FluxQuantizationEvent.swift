/// One finished (or reused) layer of a FLUX quantization.
public struct LayerOutcome: Sendable {
    /// 0-based position in the plan.
    public let index: Int
    public let count: Int
    public let layer: PlannedLayer
    /// True when an existing shard with the same settings was kept instead of quantizing again.
    public let reused: Bool
    /// The chosen smoothing exponent (nil: identity, AWQ layer).
    public let alpha: Double?
    /// W4A4: the quantizer's objective (relative output error on the calibration rows, or relative weight error
    /// without calibration); AWQ: the relative weight error.
    public let relativeError: Double
    /// Seconds spent on this layer.
    public let seconds: Double
    /// Estimated seconds until every layer is done (nil until a layer has been quantized in this run).
    public let remainingSeconds: Double?
}

/// Progress of `FluxQuantizationJob.run`.
public enum FluxQuantizationEvent: Sendable {
    /// Work on layer `index` begins.
    case layerStarted(index: Int, count: Int, layer: PlannedLayer)
    case layerFinished(LayerOutcome)
    /// Every layer is done; the output file is being written.
    case writingOutput(path: String, tensorCount: Int)
}

/// Estimates the time left from the layers quantized so far: a W4A4 layer costs N·K units, an AWQ layer N·K / 40
/// (one RTN pass against a search of SVDs and products; measured at FLUX.1 sizes).
struct RemainingTimeEstimate {
    private var unitsDone = 0.0
    private var secondsSpent = 0.0
    private var unitsLeft: Double

    init(layers: [PlannedLayer]) {
        unitsLeft = layers.reduce(0) { $0 + Self.units($1) }
    }

    static func units(_ layer: PlannedLayer) -> Double {
        let size = Double(layer.outFeatures) * Double(layer.inFeatures)
        if case .w4a4 = layer.kind { return size }
        return size / 40
    }

    /// Records a finished layer (`measured` false for a reused one, whose time says nothing about the rate) and
    /// returns the estimate for the layers still to come.
    mutating func finished(_ layer: PlannedLayer, seconds: Double, measured: Bool) -> Double? {
        let units = Self.units(layer)
        unitsLeft = max(0, unitsLeft - units)
        if measured {
            unitsDone += units
            secondsSpent += seconds
        }
        return unitsDone > 0 ? secondsSpent / unitsDone * unitsLeft : nil
    }
}
