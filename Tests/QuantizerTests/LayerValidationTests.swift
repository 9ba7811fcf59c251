import NunchakuCore
import Testing
@testable import Quantizer

@Suite struct LayerValidationTests {
    private static let name = "single_transformer_blocks.3.mlp_fc2"

    private static func layer(
        outFeatures: Int = 128, inFeatures: Int = 128, weight: [Float]? = nil, bias: [Float]? = nil,
        calibration: CalibrationActivations? = nil
    ) -> W4A4LayerInput {
        W4A4LayerInput(
            name: name, weight: weight ?? [Float](repeating: 0.01, count: outFeatures * inFeatures),
            outFeatures: outFeatures, inFeatures: inFeatures, bias: bias, calibration: calibration)
    }

    /// Quantizing `layers` fails with an error naming the layer and containing `phrase`, before any progress report.
    private func expectRejection(_ layers: [W4A4LayerInput], rank: Int = 16, _ phrase: String) {
        var reports = 0
        do {
            _ = try SVDQuantizer.quantize(layers, configuration: SVDQuantConfiguration(format: .int4, rank: rank)) { _ in
                reports += 1
            }
            Issue.record("expected an error containing \"\(phrase)\"")
        } catch {
            let message = "\(error)"
            #expect(message.contains(Self.name), "\(message)")
            #expect(message.contains(phrase), "\(message)")
        }
        #expect(reports == 0, "no work may start before every layer is checked")
    }

    @Test func shapesMustBeMultiplesOf128() {
        expectRejection([Self.layer(outFeatures: 96)], "N (out features) = 96")
        expectRejection([Self.layer(inFeatures: 192)], "K (in features) = 192")
    }

    @Test func weightAndBiasSizesMustMatch() {
        expectRejection([Self.layer(weight: [1, 2, 3])], "expected shape [128, 128]")
        expectRejection([Self.layer(bias: [Float](repeating: 0, count: 5))], "bias")
    }

    @Test func rankMustBeAMultipleOf16WithinTheMatrix() {
        expectRejection([Self.layer()], rank: 24, "rank 24")
        expectRejection([Self.layer()], rank: 144, "rank 144")
        expectRejection([Self.layer()], rank: -16, "rank -16")
    }

    @Test func calibrationWidthMustBeK() {
        let calibration = CalibrationActivations(values: [Float](repeating: 1, count: 4 * 64), width: 64)
        expectRejection([Self.layer(calibration: calibration)], "64 wide")
        let ragged = CalibrationActivations(values: [Float](repeating: 1, count: 130), width: 128)
        expectRejection([Self.layer(calibration: ragged)], "130 values")
    }

    @Test func nonFiniteValuesAreRejected() {
        var weight = [Float](repeating: 0.01, count: 128 * 128)
        weight[77] = .nan
        expectRejection([Self.layer(weight: weight)], "element 77")
        var values = [Float](repeating: 1, count: 2 * 128)
        values[130] = -.infinity
        expectRejection([Self.layer(calibration: CalibrationActivations(values: values, width: 128))], "calibration activations")
        var bias = [Float](repeating: 0, count: 128)
        bias[3] = .infinity
        expectRejection([Self.layer(bias: bias)], "bias: element 3")
    }

    @Test func aBadLayerAnywhereStopsTheBatchBeforeWork() {
        let good = W4A4LayerInput(
            name: "good", weight: [Float](repeating: 0.01, count: 128 * 128), outFeatures: 128, inFeatures: 128)
        expectRejection([good, Self.layer(outFeatures: 100)], "N (out features) = 100")
    }

    @Test func configurationMustBeUsable() {
        var reports = 0
        var configuration = SVDQuantConfiguration(format: .int4, rank: 16)
        configuration.lowRankRounds = 0
        #expect(throws: NunchakuError.self) {
            _ = try SVDQuantizer.quantize([Self.layer()], configuration: configuration) { _ in reports += 1 }
        }
        #expect(reports == 0)
    }
}
