import CPUBackend
import Foundation
import Models
import NunchakuCore
import SafeTensors
import Testing
@testable import Quantizer

/// The outlier-channel reparameterization keeps the model's function and makes the chosen channels of the
/// quantized layers' inputs `factor` times larger.
@Suite struct OutlierChannelsTests {
    static let factor: Float = 32

    /// The tiny model, its copy with outlier channels, and one forward-input file.
    struct Pair {
        let model: TinyFluxModel
        let outliers: OutlierChannels
        let stressedFolder: String
        let inputs: String
    }

    static func pair() throws -> Pair {
        let model = try TinyFluxModel()
        let source = try FluxSourceModel(path: model.folder)
        let outliers = try OutlierChannels(factor: factor, channels: OutlierChannels.spread(count: 2, width: model.width))
        let stressedFolder = model.folder + "/stressed"
        try outliers.write(source, to: stressedFolder)
        return Pair(model: model, outliers: outliers, stressedFolder: stressedFolder,
                    inputs: try model.writeInputs(name: "inputs", seed: 5, timestep: 0.6))
    }

    @Test func theForwardIsUnchanged() throws {
        let pair = try Self.pair()
        defer { pair.model.remove() }
        let inputs = try SafeTensorsCheckpoint(path: pair.inputs)
        func output(_ folder: String) throws -> [Float] {
            try FluxTransformer(files: try FluxModelFiles(path: folder), computeDType: .f32).forward(inputs: inputs).floats()
        }
        let reference = try output(pair.model.transformerFolder), stressed = try output(pair.stressedFolder)
        let difference = zip(reference, stressed).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
        let norm = reference.map { $0 * $0 }.reduce(0, +).squareRoot()
        #expect(norm > 0 && difference / norm < 2e-3, "relative difference \(difference / norm)")
    }

    @Test func theChosenChannelsOfQuantizedInputsGrowByTheFactor() throws {
        let pair = try Self.pair()
        defer { pair.model.remove() }
        func channelMaxima(_ folder: String) throws -> [String: [Float]] {
            let calibration = try CalibrationCollection.collect(
                model: try FluxSourceModel(path: folder), inputs: [try SafeTensorsCheckpoint(path: pair.inputs)], rowsPerLayer: 64)
            return calibration.activations.mapValues { rows in
                (0..<rows.width).map { c in stride(from: c, to: rows.values.count, by: rows.width).map { abs(rows.values[$0]) }.max() ?? 0 }
            }
        }
        let before = try channelMaxima(pair.model.folder), after = try channelMaxima(pair.stressedFolder)
        for layer in ["transformer_blocks.0.qkv_proj", "transformer_blocks.0.qkv_proj_context", "transformer_blocks.0.mlp_fc1",
                      "transformer_blocks.0.out_proj", "transformer_blocks.0.out_proj_context",
                      "single_transformer_blocks.0.qkv_proj", "single_transformer_blocks.0.out_proj"] {
            let (old, new) = (try #require(before[layer]), try #require(after[layer]))
            for c in pair.outliers.channels {
                let ratio = new[c] / old[c]
                #expect(abs(ratio / Self.factor - 1) < 0.03, "\(layer) channel \(c): grew \(ratio)×")
            }
            let others = (0..<old.count).filter { !pair.outliers.channels.contains($0) }
            let worst = others.map { abs(new[$0] / old[$0] - 1) }.max() ?? 0
            #expect(worst < 0.05, "\(layer): another channel changed by \(worst)")
        }
        // Layers whose inputs do not pass through a modulated norm or v keep their channels.
        let fc2 = (try #require(before["transformer_blocks.0.mlp_fc2"]), try #require(after["transformer_blocks.0.mlp_fc2"]))
        #expect(zip(fc2.0, fc2.1).allSatisfy { abs($1 / $0 - 1) < 0.05 })
    }

    @Test func badSettingsAreRefusedWithTheValue() throws {
        #expect(thrownText { _ = try OutlierChannels(factor: 3, channels: [1]) }?.contains("power of two") == true)
        #expect(thrownText { _ = try OutlierChannels(factor: 4, channels: [2, 2]) }?.contains("distinct") == true)
        #expect(thrownText { _ = try OutlierChannels.spread(count: 0, width: 128) }?.contains("from 1 to the model width 128") == true)
        #expect(try OutlierChannels.spread(count: 2, width: 256) == [64, 192])
        let model = try TinyFluxModel()
        defer { model.remove() }
        let source = try FluxSourceModel(path: model.folder)
        let text = thrownText { _ = try OutlierChannels(factor: 4, channels: [5, 128]).changedTensors(of: source) }
        #expect(text?.contains("outlier channel 128") == true && text?.contains("width is 128") == true, "\(text ?? "no error")")
    }
}
