import CPUBackend
import NunchakuCore
import Testing
@testable import Quantizer

/// Layers that read the same input quantized with one smoothing vector (`SVDQuantizer.quantize(sharingSmoothing:)`),
/// as DeepCompressor does for a FLUX single block's `qkv_proj` and `mlp_fc1`.
@Suite struct SharedSmoothingTests {
    private static let configuration = SVDQuantConfiguration(format: .int4, rank: 16, smoothingGridPoints: 4, lowRankRounds: 2)

    /// A second layer (other weights, other N) reading `first`'s calibration activations.
    private static func partner(of first: W4A4LayerInput, outFeatures: Int = 256, seed: UInt64 = 11) -> W4A4LayerInput {
        let (other, _) = syntheticInput(outFeatures: outFeatures, inFeatures: first.inFeatures, seed: seed)
        return W4A4LayerInput(
            name: "blocks.0.partner", weight: other.weight, outFeatures: outFeatures, inFeatures: first.inFeatures,
            bias: other.bias, calibration: first.calibration, inputKind: first.inputKind)
    }

    @Test func aGroupOfOneIsTheLoneLayer() throws {
        let (input, _) = syntheticInput()
        let alone = try SVDQuantizer.quantize(input, configuration: Self.configuration)
        let grouped = try #require(try SVDQuantizer.quantize(sharingSmoothing: [input], configuration: Self.configuration).first)
        #expect(grouped.smooth == alone.smooth && grouped.codes == alone.codes && grouped.wscales == alone.wscales)
        #expect(grouped.projDown == alone.projDown && grouped.projUp == alone.projUp && grouped.bias == alone.bias)
        #expect(grouped.report.alpha == alone.report.alpha && grouped.report.relativeError == alone.report.relativeError)
        #expect(grouped.report.notes == alone.report.notes)
    }

    /// One vector from the shared activation maxima and the maxima over both weights, at the α with the lowest
    /// combined output error `sqrt(Σ e_i² ‖X·W_iᵀ‖² / Σ ‖X·W_iᵀ‖²)` (the identity unless an α is strictly better).
    @Test func layersReadingOneInputGetOneSmoothingVector() throws {
        let (first, _) = syntheticInput()
        let second = Self.partner(of: first)
        let quantized = try SVDQuantizer.quantize(sharingSmoothing: [first, second], configuration: Self.configuration)
        #expect(quantized.map(\.name) == [first.name, second.name])
        #expect(quantized[0].smooth == quantized[1].smooth)
        #expect(quantized[0].report.alpha == quantized[1].report.alpha)
        #expect(quantized[0].report.notes.contains { $0.contains("smoothing shared with \(second.name)") })
        #expect(quantized[1].report.notes.contains { $0.contains("smoothing shared with \(first.name)") })

        let calibration = try #require(first.calibration)
        let k = first.inFeatures
        let references = [first, second].map { layer in
            Matmul.multiplyTransposed(calibration.values, layer.weight, m: calibration.rows, n: layer.outFeatures, k: k)
                .reduce(0.0) { $0 + Double($1) * Double($1) }
        }
        let trials = quantized.map(\.report.smoothingTrials)
        #expect(trials[0].map(\.alpha) == [nil, 0.25, 0.5, 0.75] && trials[1].map(\.alpha) == trials[0].map(\.alpha))
        let combined = trials[0].indices.map { index in
            ((0..<2).reduce(0.0) { $0 + trials[$1][index].error * trials[$1][index].error * references[$1] }
                / references.reduce(0, +)).squareRoot()
        }
        var chosen = 0
        for index in combined.indices.dropFirst() where combined[index] < combined[chosen] { chosen = index }
        #expect(quantized[0].report.alpha == trials[0][chosen].alpha, "combined errors \(combined)")

        let alpha = try #require(quantized[0].report.alpha, "outlier channels make some α beat the identity")
        let activationMax = Smoothing.columnAbsMax(calibration.values, rows: calibration.rows, columns: k)
        let weightMax = zip(Smoothing.columnAbsMax(first.weight, rows: first.outFeatures, columns: k),
                            Smoothing.columnAbsMax(second.weight, rows: second.outFeatures, columns: k)).map { max($0, $1) }
        #expect(quantized[0].smooth == Smoothing.factors(activationMax: activationMax, weightMax: weightMax, alpha: alpha))
        // Each layer keeps its own low-rank branch and residual, and stays about as accurate as alone.
        #expect(quantized[0].projUp.count == first.outFeatures * 16 && quantized[1].projUp.count == second.outFeatures * 16)
        for (layer, result) in zip([first, second], quantized) {
            let alone = try SVDQuantizer.quantize(layer, configuration: Self.configuration)
            #expect(result.report.relativeError < 1.5 * alone.report.relativeError,
                    "\(layer.name): shared \(result.report.relativeError), alone \(alone.report.relativeError)")
        }
    }

    @Test func layersThatDoNotReadOneInputAreRefused() throws {
        let (first, _) = syntheticInput()
        let (wider, _) = syntheticInput(inFeatures: 256, seed: 3)
        let (otherRows, _) = syntheticInput(seed: 5)
        let otherKind = W4A4LayerInput(
            name: "blocks.0.gelu", weight: first.weight, outFeatures: first.outFeatures, inFeatures: first.inFeatures,
            calibration: first.calibration, inputKind: .postGELU)
        let cases: [(W4A4LayerInput, String)] = [
            (wider, "K differs: 128 against 256"),
            (otherRows, "calibration activations differ"),
            (otherKind, "input kinds differ"),
        ]
        for (second, reason) in cases {
            let error = #expect(throws: NunchakuError.self) {
                _ = try SVDQuantizer.quantize(sharingSmoothing: [first, second], configuration: Self.configuration)
            }
            #expect(error?.description.contains(reason) == true, "\(String(describing: error))")
            #expect(error?.description.contains(first.name) == true && error?.description.contains(second.name) == true)
        }
        #expect(throws: NunchakuError.self) {
            _ = try SVDQuantizer.quantize(sharingSmoothing: [], configuration: Self.configuration)
        }
    }
}
