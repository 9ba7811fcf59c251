import CPUBackend
import NunchakuCore
import Testing
@testable import Quantizer

@Suite struct SVDQuantizerTests {
    /// A quick configuration for debug-build tests.
    private static func configuration(_ format: W4A4Format, rank: Int = 16) -> SVDQuantConfiguration {
        SVDQuantConfiguration(format: format, rank: rank, smoothingGridPoints: 4, lowRankRounds: 2)
    }

    /// The canonical tensors, run through the runtime formula, reproduce the error the quantizer optimized:
    /// this checks the smoothing direction, the unsmoothed `proj_down`, the scale layout and the shift-corrected bias.
    @Test(arguments: [(W4A4Format.int4, LinearInputKind.general), (.int4, .postGELU), (.nvfp4, .general), (.nvfp4, .postGELU)])
    func canonicalTensorsReproduceTheOptimizedError(format: W4A4Format, kind: LinearInputKind) throws {
        let (input, _) = syntheticInput(kind: kind)
        let quantized = try SVDQuantizer.quantize(input, configuration: Self.configuration(format))
        let calibration = try #require(input.calibration)
        let rows = calibration.rows, n = input.outFeatures, k = input.inFeatures
        let shifted = format == .int4 && kind == .postGELU
        #expect(quantized.activationsUnsigned == shifted)
        #expect(quantized.report.smoothingSource == .calibration)
        #expect(quantized.rank == 16 && quantized.projDown.count == k * 16 && quantized.projUp.count == n * 16)
        #expect(quantized.smooth.count == k && quantized.bias.count == n && quantized.codes.count == n * k)
        #expect(quantized.wscales.count == (k / format.groupSize) * n)

        let simulated = try W4A4RuntimeSimulation.output(of: quantized, input: calibration.values, rows: rows)
        var reference = Matmul.multiplyTransposed(calibration.values, input.weight, m: rows, n: n, k: k)
        for index in reference.indices { reference[index] += input.bias![index % n] }
        // The objective normalizes by ‖(x + c)·Wᵀ‖ (no bias).
        let shift: Float = shifted ? postGELUShift : 0
        let normalizer = Matmul.multiplyTransposed(calibration.values.map { $0 + shift }, input.weight, m: rows, n: n, k: k)
        let difference = zip(simulated, reference).map { $0 - $1 }
        let measured = norm(difference) / norm(normalizer)
        #expect(abs(measured - quantized.report.relativeError) < 1e-3 * quantized.report.relativeError,
                "runtime formula \(measured) vs objective \(quantized.report.relativeError)")
    }

    /// The quantizer works on the Swift fallback as on LAPACK, with the same result up to rounding.
    @Test func quantizerRunsOnEveryLinearAlgebraPath() throws {
        let (input, _) = syntheticInput()
        let errors = try linearAlgebraBackends().map { backend in
            try SVDQuantizer.quantize(input, configuration: Self.configuration(.int4), linearAlgebra: backend).report.relativeError
        }
        #expect(errors.allSatisfy { $0 > 0 && $0 < 0.05 })
        #expect(errors.allSatisfy { abs($0 - errors[0]) < 1e-3 * errors[0] }, "\(errors)")
    }

    @Test func shiftCorrectionIsBMinusWcPlusLc() {
        // W = [[1, 2, 3], [0, −1, 1]], b = [0.5, −0.5], projDown = [1, 0, 2]ᵀ, projUp = [1, 3]ᵀ.
        let c = Double(postGELUShift)
        let bias = ShiftCorrection.bias(
            [0.5, -0.5], weight: [1, 2, 3, 0, -1, 1], projDown: [1, 0, 2], projUp: [1, 3],
            outFeatures: 2, inFeatures: 3, rank: 1, shift: postGELUShift)
        #expect(bias == [Float(0.5 - 6 * c + 3 * c), Float(-0.5 + 9 * c)])
        let noBias = ShiftCorrection.bias(
            nil, weight: [1, 2, 3, 0, -1, 1], projDown: [], projUp: [], outFeatures: 2, inFeatures: 3, rank: 0,
            shift: postGELUShift)
        #expect(noBias == [Float(-6 * c), 0])
    }

    @Test func withoutCalibrationTheSmoothingUsesWeightsOnlyAndSaysSo() throws {
        let (input, _) = syntheticInput(withCalibration: false)
        let quantized = try SVDQuantizer.quantize(input, configuration: Self.configuration(.int4))
        #expect(quantized.report.smoothingSource == .weightsOnly)
        #expect(quantized.report.notes.contains { $0.contains("no calibration activations") })
        // The objective is then the relative error of the effective weight Q(R)/s + projUp·projDownᵀ.
        let n = input.outFeatures, k = input.inFeatures
        var effective = quantized.dequantizedResidual()
        let lowRank = Matmul.multiplyTransposed(quantized.projUp, quantized.projDown, m: n, n: k, k: quantized.rank)
        for index in effective.indices { effective[index] = effective[index] / quantized.smooth[index % k] + lowRank[index] }
        let measured = relativeError(effective, input.weight)
        #expect(abs(measured - quantized.report.relativeError) < 1e-3 * measured)
        #expect(measured < 0.1)
    }

    @Test func rtnConfigurationHasIdentitySmoothingAndNoBranch() throws {
        let (input, _) = syntheticInput()
        var configuration = Self.configuration(.nvfp4, rank: 0)
        configuration.smoothing = false
        let quantized = try SVDQuantizer.quantize(input, configuration: configuration)
        #expect(quantized.smooth.allSatisfy { $0 == 1 })
        #expect(quantized.rank == 0 && quantized.projDown.isEmpty && quantized.projUp.isEmpty)
        #expect(quantized.report.smoothingSource == .disabled && quantized.report.smoothingTrials.count == 1)
        #expect(quantized.report.lowRankRoundErrors.isEmpty && quantized.bias == input.bias!)
    }

    @Test func smoothingIsSearchedOverTheGridAndReportedByProgress() throws {
        let (input, _) = syntheticInput()
        var stages: [QuantizationProgress.Stage] = []
        let quantized = try SVDQuantizer.quantize([input, input], configuration: Self.configuration(.int4)) { progress in
            #expect(progress.layer == input.name && progress.layerCount == 2)
            if progress.layerIndex == 0 { stages.append(progress.stage) }
        }[0]
        let trials = quantized.report.smoothingTrials
        #expect(trials.map(\.alpha) == [nil, 0.25, 0.5, 0.75])
        // Outlier channels make some α > 0 beat the identity, and the chosen one is the best trial.
        #expect(quantized.report.alpha != nil)
        let best = try #require(trials.min { $0.error < $1.error })
        #expect(quantized.report.alpha == best.alpha)
        let rounds = quantized.report.lowRankRoundErrors
        #expect(!rounds.isEmpty && rounds.count <= 2)
        #expect(quantized.report.relativeError <= best.error)
        #expect(stages.count == trials.count + rounds.count + 1)
        if case let .finished(error) = stages.last { #expect(error == quantized.report.relativeError) } else {
            Issue.record("the last stage must be .finished")
        }
        // Smoothing factors are bf16-representable (the checkpoint's dtype).
        #expect(quantized.smooth.allSatisfy { WeightQuantizer.bf16($0) == $0 })
    }

    private func norm(_ values: [Float]) -> Double {
        values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }
}
