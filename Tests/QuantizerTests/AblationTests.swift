import NunchakuCore
import Testing
@testable import Quantizer

@Suite struct AblationTests {
    /// The SVDQuant paper's ablation order on a small synthetic layer with activation outliers:
    /// SVDQuant ≤ 0.5 × RTN, and below smoothing only and low-rank only.
    @Test(arguments: W4A4Format.allCases)
    func svdQuantBeatsEveryAblation(format: W4A4Format) throws {
        let layer = SyntheticLayer(SyntheticLayerSpecification(
            outFeatures: 128, inFeatures: 128, calibrationRows: 32, evaluationRows: 32, seed: 3))
        let base = SVDQuantConfiguration(format: format, smoothingGridPoints: 4, lowRankRounds: 2)
        let results = try QuantizationAblation.run(layer: layer.ablationLayer, formats: [format], ranks: [16], base: base)
        func error(_ method: QuantizationAblation.Method) throws -> Double {
            try #require(results.first { $0.method == method }).relativeError
        }
        let rtn = try error(.rtn), smoothing = try error(.smoothingOnly)
        let lowRank = try error(.lowRankOnly), svdQuant = try error(.svdQuant)
        #expect(results.count == 4)
        #expect(svdQuant <= 0.5 * rtn, "SVDQuant \(svdQuant) vs RTN \(rtn)")
        #expect(svdQuant < smoothing, "SVDQuant \(svdQuant) vs smoothing only \(smoothing)")
        #expect(svdQuant < lowRank, "SVDQuant \(svdQuant) vs low-rank only \(lowRank)")
        let table = QuantizationAblation.table(results)
        #expect(table.contains("| \(format) | 16 | \(QuantizationAblation.formatted(rtn)) |"))
    }

    @Test func syntheticLayerHasTheRequestedOutliers() {
        let specification = SyntheticLayerSpecification(
            outFeatures: 16, inFeatures: 64, calibrationRows: 200, evaluationRows: 8, outlierChannels: 3, seed: 9)
        let layer = SyntheticLayer(specification)
        #expect(layer.outlierChannels.count == 3 && Set(layer.outlierChannels).count == 3)
        let maxima = Smoothing.columnAbsMax(layer.calibration, rows: 200, columns: 64)
        let ordinary = (0..<64).filter { !layer.outlierChannels.contains($0) }.map { maxima[$0] }.max() ?? 0
        for channel in layer.outlierChannels { #expect(maxima[channel] > 5 * ordinary) }
        #expect(layer.weight.count == 16 * 64 && layer.evaluation.count == 8 * 64 && layer.bias.count == 16)
    }

    @Test func numbersAreShownWithThreeSignificantDigits() {
        #expect(QuantizationAblation.formatted(0.0123456) == "0.0123")
        #expect(QuantizationAblation.formatted(0.347113) == "0.347")
        #expect(QuantizationAblation.formatted(1.5) == "1.50")
        #expect(QuantizationAblation.formatted(0.1) == "0.100")
    }
}
