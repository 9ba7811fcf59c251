import Foundation
import NunchakuCore
import Testing
@testable import Quantizer

@Suite struct WorkFolderTests {
    @Test func shardsKeepTheirRecordAndTensors() throws {
        let folder = QuantizationWorkFolder(output: NSTemporaryDirectory() + "work-\(UUID().uuidString)/out.safetensors")
        try folder.create()
        defer { try? folder.remove() }
        let path = folder.shardPath(index: 7, name: "transformer_blocks.0.qkv_proj")
        #expect(path.hasSuffix(".safetensors.parts/0007-transformer_blocks.0.qkv_proj.safetensors"))
        #expect(folder.existingShard(at: path) == nil)
        let record = LayerShardRecord(settings: "writer 1; format int4", alpha: 0.35, relativeError: 0.0421)
        try folder.writeShard(at: path, layer: "transformer_blocks.0.qkv_proj", tensors: ["bias": Tensor([1, 2], shape: [2])], record: record)
        #expect(folder.existingShard(at: path) == record)
        let identity = LayerShardRecord(settings: "s", alpha: nil, relativeError: 1)
        try folder.writeShard(at: path, layer: "x", tensors: [:], record: identity)
        #expect(folder.existingShard(at: path) == identity, "no alpha stays no alpha")
        try Data("not a safetensors file".utf8).write(to: URL(fileURLWithPath: path))
        #expect(folder.existingShard(at: path) == nil, "an unreadable shard is redone")
        try folder.remove()
        #expect(!FileManager.default.fileExists(atPath: folder.path))
    }

    /// The cached calibration is used only for the same inputs and sampling settings.
    @Test func calibrationCacheIsKeyedByInputsAndSettings() throws {
        let model = try TinyFluxModel(doubleBlocks: 0, singleBlocks: 1)
        defer { model.remove() }
        let source = try FluxSourceModel(path: model.folder)
        let first = try model.writeInputs(name: "a", seed: 1, timestep: 0.5)
        let second = try model.writeInputs(name: "b", seed: 2, timestep: 0.5)
        let key = try CalibrationCache.key(model: source, inputPaths: [first], rowsPerLayer: 8, seed: 1)
        #expect(try CalibrationCache.key(model: source, inputPaths: [first], rowsPerLayer: 8, seed: 1) == key)
        for other in [try CalibrationCache.key(model: source, inputPaths: [second], rowsPerLayer: 8, seed: 1),
                      try CalibrationCache.key(model: source, inputPaths: [first], rowsPerLayer: 16, seed: 1),
                      try CalibrationCache.key(model: source, inputPaths: [first, second], rowsPerLayer: 8, seed: 1)] {
            #expect(other != key)
        }
        let set = CalibrationSet(activations: ["single_transformer_blocks.0.qkv_proj": CalibrationActivations(values: [1, 2], width: 2)])
        let path = model.folder + "/cache.safetensors"
        try CalibrationCache.store(set, path: path, key: key)
        #expect(CalibrationCache.load(path: path, key: key)?.activations["single_transformer_blocks.0.qkv_proj"]?.values == [1, 2])
        #expect(CalibrationCache.load(path: path, key: "other") == nil)
    }
}
