import Foundation
import Models
import NunchakuCore
import Testing
@testable import Quantizer

/// The text of the error `body` throws, or nil when it throws none.
func thrownText(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return String(describing: error)
    }
}

/// Bad models, settings and calibration files are refused with a clear error before any long work.
@Suite struct FluxSourceModelTests {
    @Test func aModelOfAnotherClassIsRefused() throws {
        let model = try TinyFluxModel(configOverrides: ["_class_name": "\"SD3Transformer2DModel\""])
        defer { model.remove() }
        let text = thrownText { _ = try FluxSourceModel(path: model.folder) }
        #expect(text?.contains("SD3Transformer2DModel") == true && text?.contains("FluxTransformer2DModel") == true, "\(text ?? "no error")")
    }

    @Test func aWidthThatIsNoMultipleOf128IsRefused() throws {
        let model = try TinyFluxModel(heads: 2, headDimension: 32)
        defer { model.remove() }
        let text = thrownText { _ = try FluxSourceModel(path: model.folder) }
        #expect(text?.contains("64 is not a multiple of 128") == true, "\(text ?? "no error")")
    }

    @Test func everyMissingOrUnknownBlockTensorIsListed() throws {
        let model = try TinyFluxModel(
            extraTensors: ["single_transformer_blocks.0.attn.to_added.weight": Tensor(zeros: [4], dtype: .bf16)],
            dropTensors: ["transformer_blocks.0.attn.to_k.weight", "single_transformer_blocks.0.proj_out.bias"])
        defer { model.remove() }
        let text = thrownText { _ = try FluxSourceModel(path: model.folder) } ?? "no error"
        for name in ["transformer_blocks.0.attn.to_k.weight is missing", "single_transformer_blocks.0.proj_out.bias is missing",
                     "single_transformer_blocks.0.attn.to_added.weight"] {
            #expect(text.contains(name), "\(name) not in: \(text)")
        }
    }

    @Test func aQuantizedCheckpointIsRefused() throws {
        let model = try TinyFluxModel(extraTensors: ["transformer_blocks.0.qkv_proj.qweight": Tensor(zeros: [4], dtype: .i8)])
        defer { model.remove() }
        let text = thrownText { _ = try FluxSourceModel(path: model.folder) }
        #expect(text?.contains("already quantized") == true, "\(text ?? "no error")")
    }

    @Test func ranksThatDoNotFitAreRefused() throws {
        let model = try TinyFluxModel()
        defer { model.remove() }
        let source = try FluxSourceModel(path: model.folder)
        for (rank, message) in [(0, "too small"), (24, "multiple of 16"), (256, "min(N, K) = 128")] {
            let text = thrownText { try FluxQuantizationJob.check(SVDQuantConfiguration(format: .int4, rank: rank), plan: source.plan) }
            #expect(text?.contains(message) == true, "rank \(rank): \(text ?? "no error")")
        }
    }

    @Test func calibrationThatDoesNotMatchTheModelIsRefusedBeforeAnyWork() throws {
        let model = try TinyFluxModel()
        defer { model.remove() }
        let source = try FluxSourceModel(path: model.folder)
        var activations: [String: CalibrationActivations] = [:]
        for layer in source.plan.w4a4Layers {
            activations[layer.name] = CalibrationActivations(values: [Float](repeating: 0.5, count: 2 * layer.inFeatures), width: layer.inFeatures)
        }
        activations["transformer_blocks.0.out_proj"] = CalibrationActivations(values: [Float](repeating: 1, count: 64), width: 32)
        activations["transformer_blocks.0.mlp_fc1"] = nil
        activations["transformer_blocks.7.qkv_proj"] = CalibrationActivations(values: [1], width: 1)
        let output = model.folder + "/out.safetensors"
        let text = thrownText {
            _ = try FluxQuantizationJob(
                model: source, output: output, configuration: SVDQuantConfiguration(format: .int4, rank: 16),
                calibration: CalibrationSet(activations: activations), calibrationSource: "calib.safetensors")
        } ?? "no error"
        for part in ["calib.safetensors", "transformer_blocks.0.out_proj is 32 wide, the layer has K = 128",
                     "missing: transformer_blocks.0.mlp_fc1", "transformer_blocks.7.qkv_proj"] {
            #expect(text.contains(part), "\(part) not in: \(text)")
        }
        #expect(!FileManager.default.fileExists(atPath: QuantizationWorkFolder(output: output).path))
    }

    /// The plan of the real FLUX.1 size: 19 double blocks of 10 layers, 38 single blocks of 5, Nunchaku's shapes.
    @Test func theFullSizePlanHasNunchakusLayers() {
        let plan = FluxQuantizationPlan(config: FluxConfig())
        #expect(plan.layers.count == 19 * 10 + 38 * 5 && plan.w4a4Layers.count == 19 * 8 + 38 * 4)
        #expect(plan.renamedTensors.count == 19 * 4 + 38 * 2)
        func layer(_ name: String) -> PlannedLayer? { plan.layers.first { $0.name == name } }
        let expected: [(String, Int, Int, PlannedLayerKind)] = [
            ("transformer_blocks.0.norm1.linear", 3072, 18432, .awqModulation(chunks: 6)),
            ("transformer_blocks.18.qkv_proj_context", 3072, 9216, .w4a4(.general)),
            ("transformer_blocks.3.mlp_context_fc2", 12288, 3072, .w4a4(.postGELU)),
            ("single_transformer_blocks.37.norm.linear", 3072, 9216, .awqModulation(chunks: 3)),
            ("single_transformer_blocks.0.mlp_fc1", 3072, 12288, .w4a4(.general)),
            ("single_transformer_blocks.0.out_proj", 3072, 3072, .w4a4(.general)),
            ("single_transformer_blocks.0.mlp_fc2", 12288, 3072, .w4a4(.postGELU)),
        ]
        for (name, k, n, kind) in expected {
            #expect(layer(name).map { [$0.inFeatures, $0.outFeatures] } == [k, n] && layer(name)?.kind == kind, "\(name)")
        }
        #expect(layer("single_transformer_blocks.0.mlp_fc2")?.calibration
            == CalibrationPoint(linear: "single_transformer_blocks.0.proj_out", inputWidth: 15360, columns: 3072..<15360))
        #expect(layer("single_transformer_blocks.0.mlp_fc1")?.calibration?.linear == "single_transformer_blocks.0.attn.to_q")
        #expect(plan.calibrationInputs.count == 19 * 8 + 38 * 2)
    }
}
