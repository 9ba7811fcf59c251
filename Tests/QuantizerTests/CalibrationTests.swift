import Foundation
import Models
import NunchakuCore
import SafeTensors
import Testing
@testable import Quantizer

@Suite struct CalibrationTests {
    @Test func reservoirKeepsABoundedUniformSample() {
        let reservoir = ActivationReservoir(capacity: 200, width: 2, seed: 5)
        reservoir.add((0..<100).flatMap { [Float($0), -Float($0)] })
        #expect(reservoir.sample.count == 200 && reservoir.rowsSeen == 100, "everything is kept below the capacity")
        reservoir.add((100..<20_000).flatMap { [Float($0), -Float($0)] })
        let sample = reservoir.sample
        #expect(sample.count == 400 && reservoir.rowsSeen == 20_000)
        let rows = stride(from: 0, to: sample.count, by: 2).map { sample[$0] }
        #expect((0..<200).allSatisfy { sample[2 * $0 + 1] == -sample[2 * $0] }, "rows stay whole")
        #expect(Set(rows).count == 200)
        let mean = rows.reduce(0, +) / 200
        #expect(abs(mean - 10_000) < 1_200, "mean row index \(mean): the sample spans all rows seen")
        #expect(rows.filter { $0 < 100 }.count < 10, "the first rows are mostly replaced")

        let again = ActivationReservoir(capacity: 200, width: 2, seed: 5)
        again.add((0..<20_000).flatMap { [Float($0), -Float($0)] })
        #expect(again.sample == sample, "seeded: the same rows in one or two calls")
    }

    /// The plan's calibration points: single-block qkv and mlp_fc1 share to_q's input; proj_out's input is split.
    @Test func recordedRowsAreCutToEachLayersColumns() throws {
        let config = FluxConfig(numLayers: 0, numSingleLayers: 1, attentionHeadDim: 64, numAttentionHeads: 2, axesDimsRope: [8, 28, 28])
        let plan = FluxQuantizationPlan(config: config)
        let reservoirs = plan.calibrationInputs.mapValues { ActivationReservoir(capacity: 4, width: $0, seed: 1) }
        let projOut = try #require(reservoirs["single_transformer_blocks.0.proj_out"])
        #expect(projOut.width == 640)
        projOut.add((0..<(3 * 640)).map { Float($0) })
        try #require(reservoirs["single_transformer_blocks.0.attn.to_q"]).add((0..<128).map { Float($0) })
        let set = try CalibrationSet(plan: plan, reservoirs: reservoirs)
        let attention = try #require(set.activations["single_transformer_blocks.0.out_proj"])
        let mlp = try #require(set.activations["single_transformer_blocks.0.mlp_fc2"])
        #expect(attention.width == 128 && attention.rows == 3 && mlp.width == 512 && mlp.rows == 3)
        #expect(attention.values[128] == 640 && mlp.values[0] == 128 && mlp.values[512] == 768)
        #expect(set.activations["single_transformer_blocks.0.mlp_fc1"]?.values == set.activations["single_transformer_blocks.0.qkv_proj"]?.values)
        try set.validate(against: plan, source: "recorded")
    }

    @Test func calibrationFilesRoundTripAndAreChecked() throws {
        let folder = NSTemporaryDirectory() + "calibration-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let set = CalibrationSet(activations: [
            "transformer_blocks.0.qkv_proj": CalibrationActivations(values: [1, -2.5, 0.375, 4], width: 2),
        ])
        let path = folder + "/calibration.safetensors"
        try set.write(to: path, metadata: ["note": "test"])
        let read = try CalibrationSet.read(path: path)
        #expect(read.activations["transformer_blocks.0.qkv_proj"]?.values == [1, -2.5, 0.375, 4])
        #expect(read.activations["transformer_blocks.0.qkv_proj"]?.width == 2)

        var writer = SafeTensorsWriter(metadata: ["format": "something-else"])
        try writer.add("x", Tensor([1, 2], shape: [1, 2]))
        try writer.write(to: folder + "/other.safetensors")
        #expect(thrownText { _ = try CalibrationSet.read(path: folder + "/other.safetensors") }?.contains("something-else") == true)
        var vector = SafeTensorsWriter()
        try vector.add("transformer_blocks.0.qkv_proj", Tensor([1, 2], shape: [2]))
        try vector.write(to: folder + "/vector.safetensors")
        #expect(thrownText { _ = try CalibrationSet.read(path: folder + "/vector.safetensors") }?.contains("[rows, K]") == true)
    }
}
