/// How to build a synthetic linear layer that looks like a diffusion-model layer to the quantizer.
public struct SyntheticLayerSpecification: Sendable, Equatable {
    public var outFeatures: Int
    public var inFeatures: Int
    public var calibrationRows: Int
    /// Held-out rows on which the ablation measures the error.
    public var evaluationRows: Int
    /// Input channels whose activations are much larger than the rest.
    public var outlierChannels: Int
    /// Each outlier channel is scaled by a factor drawn uniformly from this range.
    public var outlierScale: ClosedRange<Float>
    /// Weight columns (input channels) scaled up.
    public var heavyWeightColumns: Int
    public var heavyWeightScale: Float
    public var seed: UInt64

    public init(
        outFeatures: Int, inFeatures: Int, calibrationRows: Int = 256, evaluationRows: Int = 256,
        outlierChannels: Int = 8, outlierScale: ClosedRange<Float> = 20...100, heavyWeightColumns: Int = 8,
        heavyWeightScale: Float = 8, seed: UInt64 = 1
    ) {
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.calibrationRows = calibrationRows
        self.evaluationRows = evaluationRows
        self.outlierChannels = outlierChannels
        self.outlierScale = outlierScale
        self.heavyWeightColumns = heavyWeightColumns
        self.heavyWeightScale = heavyWeightScale
        self.seed = seed
    }
}

/// A synthetic layer: Gaussian weights (std 1/√K) with a few heavy columns, Gaussian activations with a few outlier
/// channels (the same channels in calibration and evaluation rows), and a small Gaussian bias.
public struct SyntheticLayer: Sendable {
    public let specification: SyntheticLayerSpecification
    /// [N, K].
    public let weight: [Float]
    /// [N].
    public let bias: [Float]
    /// [calibrationRows, K].
    public let calibration: [Float]
    /// [evaluationRows, K].
    public let evaluation: [Float]
    /// The outlier channels, ascending.
    public let outlierChannels: [Int]

    public init(_ specification: SyntheticLayerSpecification) {
        self.specification = specification
        let rows = specification.outFeatures, columns = specification.inFeatures
        var random = SeededGaussian(seed: specification.seed)
        var weight = random.floats(rows * columns, scale: 1 / Float(columns).squareRoot())
        for column in Self.distinctChannels(specification.heavyWeightColumns, of: columns, &random) {
            for row in 0..<rows { weight[row * columns + column] *= specification.heavyWeightScale }
        }
        let outliers = Self.distinctChannels(specification.outlierChannels, of: columns, &random)
        var channelScale = [Float](repeating: 1, count: columns)
        let range = specification.outlierScale
        for channel in outliers {
            channelScale[channel] = range.lowerBound + Float(random.nextUniform()) * (range.upperBound - range.lowerBound)
        }
        func activations(_ count: Int) -> [Float] {
            var values = random.floats(count * columns)
            for index in values.indices { values[index] *= channelScale[index % columns] }
            return values
        }
        self.weight = weight
        self.bias = random.floats(rows, scale: 0.1)
        self.calibration = activations(specification.calibrationRows)
        self.evaluation = activations(specification.evaluationRows)
        self.outlierChannels = outliers
    }

    /// `count` distinct channels out of `total`, ascending (partial Fisher–Yates shuffle).
    private static func distinctChannels(_ count: Int, of total: Int, _ random: inout SeededGaussian) -> [Int] {
        var channels = Array(0..<total)
        for index in 0..<min(count, total) {
            let pick = index + Int(random.nextBits() % UInt64(total - index))
            channels.swapAt(index, pick)
        }
        return channels.prefix(min(count, total)).sorted()
    }
}
