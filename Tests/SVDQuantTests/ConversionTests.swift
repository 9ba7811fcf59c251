import Foundation
import NunchakuCore
import SafeTensors
import Testing
@testable import SVDQuant

/// `SVDQuantConverter` (what `nunchaku convert` runs): lossless round trips, the dense export, and output checks.
@Suite struct ConversionTests {
    typealias Source = CheckpointLoadingTests.Source

    static func stored(_ tensors: [String: Tensor]) throws -> [String: StoredTensor] {
        try tensors.mapValues { tensor in
            let raw = try RawTensor(tensor)
            return StoredTensor(dtype: raw.dtype, shape: raw.shape, bytes: raw.bytes)
        }
    }

    @Test(arguments: [SVDQuantPrecision.int4, .nvfp4])
    func nunchakuToCanonicalToLiteToNunchakuIsBitIdentical(precision: SVDQuantPrecision) throws {
        let model = SyntheticModel(precision: precision, rank: precision == .int4 ? 16 : 32, seed: 21)
        let folder = try ScratchFolder()
        let original = folder.file("original.safetensors")
        try model.writeMerged(to: original)

        let canonical = folder.file("canonical.safetensors")
        try SVDQuantConverter.convert(SVDQuantCheckpoint(path: original), to: .canonical, output: canonical)
        #expect(try storedTensors(canonical) == Self.stored(model.canonicalTensors(vectorOrder: .natural)))
        let canonicalMetadata = try storedMetadata(canonical)
        #expect(canonicalMetadata["nunchaku_layout"] == "canonical" && canonicalMetadata["nunchaku_vector_order"] == "natural")

        let lite = folder.file("lite")
        let liteReport = try SVDQuantConverter.convert(SVDQuantCheckpoint(path: canonical), to: .nunchakuLite, output: lite)
        #expect(try storedTensors(lite) == Self.stored(model.nunchakuTensors(pythonModules: true, pythonParameters: true, lite: true)))
        #expect(liteReport.notes.contains { $0.contains("lost smooth_orig") })
        let config = try JSONValue.parse(FileContents.read(lite + "/config.json"))
        let quantization = try #require(config["quantization_config"])
        #expect(config["_class_name"]?.stringValue == "FluxTransformer2DModel")
        #expect(quantization["quant_method"]?.stringValue == "nunchaku_lite" && quantization["compute_dtype"]?.stringValue == "bfloat16")
        #expect(quantization["svdq_w4a4"]?["precision"]?.stringValue == (precision == .int4 ? "int4" : "fp4"))
        #expect(quantization["svdq_w4a4"]?["rank"]?.intValue == model.rank)
        #expect(Set(quantization["svdq_w4a4"]?["targets"]?.arrayElements?.compactMap(\.stringValue) ?? []) == Set(model.w4a4.map(\.pythonName)))
        #expect(Set(quantization["awq_w4a16"]?["targets"]?.arrayElements?.compactMap(\.stringValue) ?? []) == Set(model.awq.map(\.name)))

        let back = folder.file("back.safetensors")
        let backReport = try SVDQuantConverter.convert(SVDQuantCheckpoint(path: lite), to: .nunchaku, output: back)
        #expect(backReport.notes.contains { $0.contains("had no smooth_orig") })
        let (before, after) = (try storedTensors(original), try storedTensors(back))
        #expect(before.keys.sorted() == after.keys.sorted())
        for (name, tensor) in before {
            if name.hasSuffix(".smooth_orig") {
                // Nunchaku-Lite has no smooth_orig; coming back it is a copy of smooth (unused at run time).
                #expect(after[name] == before[String(name.dropLast("_orig".count))], "\(name)")
            } else {
                #expect(after[name] == tensor, "\(name)")
            }
        }
        let (metadataBefore, metadataAfter) = (try storedMetadata(original), try storedMetadata(back))
        for key in ["config", "model_class", "quantization_config", "comfy_config"] {
            #expect(metadataAfter[key] == metadataBefore[key], "\(key)")
        }
    }

    @Test(arguments: Source.allCases)
    func everySourceConvertsToTheSameCanonicalAndNunchakuFiles(source: Source) throws {
        let model = SyntheticModel(precision: .nvfp4, rank: 16, seed: 31)
        let folder = try ScratchFolder()
        let checkpoint = try SVDQuantCheckpoint(path: source.write(model, in: folder))
        var canonical = try Self.stored(model.canonicalTensors(vectorOrder: .natural))
        var nunchaku = try Self.stored(model.nunchakuTensors(pythonModules: false, pythonParameters: false))
        if source == .lite {
            canonical = canonical.filter { !$0.key.hasSuffix(".smooth_orig") }
            for (name, tensor) in nunchaku where name.hasSuffix(".smooth") { nunchaku[name + "_orig"] = tensor }
        }
        try SVDQuantConverter.convert(checkpoint, to: .canonical, output: folder.file("out-canonical.safetensors"))
        try SVDQuantConverter.convert(checkpoint, to: .nunchaku, output: folder.file("out-nunchaku.safetensors"))
        #expect(try storedTensors(folder.file("out-canonical.safetensors")) == canonical)
        #expect(try storedTensors(folder.file("out-nunchaku.safetensors")) == nunchaku)
    }

    @Test func genericModelsKeepPythonNamesInNunchakuOutput() throws {
        let model = SyntheticModel(family: .generic, seed: 41)
        let folder = try ScratchFolder()
        try model.writeLiteFolder(folder.file("lite"))
        try SVDQuantConverter.convert(SVDQuantCheckpoint(path: folder.file("lite")), to: .nunchaku, output: folder.file("n.safetensors"))
        var expected = try Self.stored(model.nunchakuTensors(pythonModules: false, pythonParameters: true))
        for (name, tensor) in expected where name.hasSuffix(".smooth_factor") { expected[name + "_orig"] = tensor }
        #expect(try storedTensors(folder.file("n.safetensors")) == expected)
        let metadata = try storedMetadata(folder.file("n.safetensors"))
        #expect(metadata["model_class"] == "NunchakuZImageTransformer2DModel")
        #expect(metadata["quantization_config"] == NunchakuQuantizationConfig.text(precision: .int4, rank: 16))
        let reopened = try SVDQuantCheckpoint(path: folder.file("n.safetensors"))
        #expect(reopened.container == .nunchakuMerged && reopened.parameterNaming == .python && reopened.rank == 16)
    }

    @Test(arguments: [DType.bf16, .f32])
    func denseExportDequantizesEveryLayer(dtype: DType) throws {
        let model = SyntheticModel(precision: .int4, seed: 51)
        let folder = try ScratchFolder()
        try model.writeMerged(to: folder.file("merged.safetensors"))
        let checkpoint = try SVDQuantCheckpoint(path: folder.file("merged.safetensors"))
        let output = folder.file("dense.safetensors")
        let report = try SVDQuantConverter.convert(checkpoint, to: .dense, output: output, denseDType: dtype)
        #expect(report.notes.contains { $0.contains("lossy") })
        let dense = try SafeTensorsCheckpoint(path: output)
        #expect(try detectCheckpointFormat(dense) == .dense(dtype: dtype == .bf16 ? .bf16 : .f32, diffusersClass: "FluxTransformer2DModel"))
        #expect(try storedMetadata(output)["nunchaku_dequantized_from"] == model.quantizationConfig)
        // A signed, an unsigned and a single-block layer (the reference computation is slow in debug builds).
        for layer in model.w4a4 where [0, 7, 10].contains(model.w4a4.firstIndex { $0.name == layer.name }!) {
            let weights = try checkpoint.w4a4Weights(layer.name)
            let (weight, bias) = weights.denseEquivalent()
            let n = weights.outFeatures, k = weights.inFeatures
            #expect(TensorValues.bytes(try dense.tensor(layer.name + ".weight")) == TensorValues.bytes(TensorValues.tensor(weight, shape: [n, k], dtype: dtype)))
            #expect(TensorValues.bytes(try dense.tensor(layer.name + ".bias")) == TensorValues.bytes(TensorValues.tensor(bias, shape: [n], dtype: dtype)))
            if weights.actUnsigned {
                // The shift term makes the dense bias differ from the stored one.
                #expect(bias != TensorValues.floats(weights.canonical.bias!))
            }
        }
        for layer in model.awq {
            let weight = try dense.tensor(layer.name + ".weight").floats()
            let codes = TensorValues.bytes(layer.tensors.qweight)
            let scales = layer.tensors.wscales.floats(), zeros = layer.tensors.wzeros.floats()
            let n = layer.tensors.qweight.shape[0]
            for (row, column) in [(0, 0), (1, 1), (n - 1, 127), (n / 2, 64)] {
                let code = Float((codes[(row * 128 + column) / 2] >> (column % 2 == 0 ? 0 : 4)) & 0xF)
                let expected = code * scales[(column / 64) * n + row] + zeros[(column / 64) * n + row]
                #expect(weight[row * 128 + column] == (dtype == .bf16 ? ActivationDType.bf16.round(expected) : expected))
            }
        }
        for tensor in model.dense { #expect(TensorValues.bytes(try dense.tensor(tensor.name)) == TensorValues.bytes(tensor.tensor)) }
        if dtype == .f32 {
            // The exported layer computes exactly the fp32 dense equivalent.
            let name = "transformer_blocks.0.mlp_fc2"
            let exported = try Linear(name: name, weight: dense.tensor(name + ".weight"), bias: dense.tensor(name + ".bias"))
            let x = W4A4Fixtures.activations(rows: 3, { var o = W4A4Fixtures.Options(); o.k = 512; return o }(), seed: 2)
            #expect(try exported.forward(x.converted(to: .f32)).floats() == checkpoint.w4a4Weights(name).denseForward(x))
        }
    }

    @Test func liteOutputHasTheParametersLiteExpects() throws {
        let folder = try ScratchFolder()
        for precision in [SVDQuantPrecision.int4, .nvfp4] {
            let model = SyntheticModel(precision: precision, seed: 61)
            try model.writeMerged(to: folder.file("\(precision).safetensors"))
            let output = folder.file("lite-\(precision)")
            try SVDQuantConverter.convert(SVDQuantCheckpoint(path: folder.file("\(precision).safetensors")), to: .nunchakuLite, output: output)
            let tensors = try storedTensors(output)
            for layer in model.w4a4 {
                let parameters = Set(tensors.keys.filter { $0.hasPrefix(layer.pythonName + ".") }.map { String($0.dropFirst(layer.pythonName.count + 1)) })
                let base: Set = ["qweight", "wscales", "bias", "smooth_factor", "proj_down", "proj_up"]
                #expect(parameters == (precision == .int4 ? base : base.union(["wcscales", "wtscale"])), "\(layer.pythonName)")
            }
        }
    }

    @Test func rejectsWhatATargetCannotExpressAndBadOutputs() throws {
        let folder = try ScratchFolder()
        var model = SyntheticModel(precision: .int4, seed: 71)
        model.w4a4[2].tensors.wcscales = halfTensor(Array(repeating: 2, count: 128), [128], .bf16)
        try model.writeMerged(to: folder.file("merged.safetensors"))
        let checkpoint = try SVDQuantCheckpoint(path: folder.file("merged.safetensors"))
        #expect(throws: SVDQuantCheckpointError.unsupportedConversion(
            layer: "transformer_blocks.0.out_proj",
            reason: "an INT4 layer with wcscales has no Nunchaku-Lite form (Lite's INT4 layer has no channel scales)")) {
            try SVDQuantConverter.convert(checkpoint, to: .nunchakuLite, output: folder.file("lite"))
        }
        let occupied = folder.file("occupied")
        try FileManager.default.createDirectory(atPath: occupied, withIntermediateDirectories: true)
        try Data([1]).write(to: URL(fileURLWithPath: occupied + "/other.safetensors"))
        #expect(throws: SVDQuantCheckpointError.self) { try SVDQuantConverter.convert(checkpoint, to: .nunchakuLite, output: occupied) }
        #expect(throws: SVDQuantCheckpointError.self) { try SVDQuantConverter.convert(checkpoint, to: .canonical, output: occupied) }
        #expect(throws: SVDQuantCheckpointError.self) {
            try SVDQuantConverter.convert(checkpoint, to: .dense, output: folder.file("d.safetensors"), denseDType: .i8)
        }
        // No scratch files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).allSatisfy { !$0.contains(".spool-") })
    }

    @Test func reportsProgressPerLayer() throws {
        let model = SyntheticModel(seed: 81)
        let folder = try ScratchFolder()
        try model.writeMerged(to: folder.file("merged.safetensors"))
        var stages: [SVDQuantConversionProgress] = []
        let report = try SVDQuantConverter.convert(
            SVDQuantCheckpoint(path: folder.file("merged.safetensors")), to: .canonical, output: folder.file("c.safetensors")
        ) { stages.append($0) }
        let layers = model.w4a4.count + model.awq.count
        #expect(stages.count == layers + 1 && stages.allSatisfy { $0.layerCount == layers })
        #expect(stages.prefix(layers).map(\.layersDone) == Array(0..<layers))
        #expect(stages.last?.stage == .writing(bytes: report.tensorBytes))
        #expect(report.tensorCount == (try storedTensors(folder.file("c.safetensors"))).count)
    }
}
