import NunchakuCore
import SafeTensors
import Testing
@testable import SVDQuant

/// Every checkpoint format and naming scheme loads into the same layers.
@Suite struct CheckpointLoadingTests {
    enum Source: String, CaseIterable {
        case merged, mergedPythonNames, legacyFolder, lite, canonicalNatural, canonicalNunchakuOrder

        var container: SVDQuantContainer {
            switch self {
            case .merged, .mergedPythonNames: .nunchakuMerged
            case .legacyFolder: .nunchakuLegacyFolder
            case .lite: .nunchakuLite
            case .canonicalNatural, .canonicalNunchakuOrder: .canonical
            }
        }

        /// Writes `model` in this form inside `folder`; returns the path to open.
        func write(_ model: SyntheticModel, in folder: ScratchFolder) throws -> String {
            switch self {
            case .merged: try model.writeMerged(to: folder.file("merged.safetensors"))
            case .mergedPythonNames: try model.writeMerged(to: folder.file("merged.safetensors"), pythonModules: true, pythonParameters: true)
            case .legacyFolder: try model.writeLegacyFolder(folder.file("legacy"))
            case .lite: try model.writeLiteFolder(folder.file("lite"))
            case .canonicalNatural: try model.writeCanonical(to: folder.file("canonical.safetensors"))
            case .canonicalNunchakuOrder: try model.writeCanonical(to: folder.file("canonical.safetensors"), vectorOrder: .nunchaku)
            }
            return folder.file([.merged: "merged.safetensors", .mergedPythonNames: "merged.safetensors", .legacyFolder: "legacy",
                                .lite: "lite", .canonicalNatural: "canonical.safetensors", .canonicalNunchakuOrder: "canonical.safetensors"][self]!)
        }
    }

    /// The canonical tensors a format gives back: Nunchaku-Lite has no smooth_orig.
    static func expected(_ tensors: SVDQW4A4Tensors, from source: Source) -> SVDQW4A4Tensors {
        var result = tensors
        if source == .lite { result.smoothOrig = nil }
        return result
    }

    static func natural(_ names: [String]) -> [String] { names.sorted(by: CheckpointInventory.naturallyPrecedes) }

    @Test(arguments: Source.allCases, [SVDQuantPrecision.int4, .nvfp4])
    func everyFormatLoadsTheSameFluxLayers(source: Source, precision: SVDQuantPrecision) throws {
        let model = SyntheticModel(precision: precision, rank: precision == .int4 ? 16 : 32, seed: 7)
        let folder = try ScratchFolder()
        let checkpoint = try SVDQuantCheckpoint(path: source.write(model, in: folder))
        #expect(checkpoint.container == source.container)
        #expect(checkpoint.precision == precision && checkpoint.rank == model.rank && checkpoint.groupSize == precision.groupSize)
        #expect(checkpoint.model.family == .flux)
        #expect(checkpoint.w4a4LayerNames == Self.natural(model.w4a4.map(\.name)))
        #expect(checkpoint.awqLayerNames == Self.natural(model.awq.map(\.name)))
        #expect(checkpoint.denseTensorNames == Self.natural(model.dense.map(\.name)))
        for layer in model.w4a4 {
            let weights = try checkpoint.w4a4Weights(layer.name)
            #expect(SVDQW4A4WeightsTests.sameBytes(weights.canonical, Self.expected(layer.tensors, from: source)), "\(layer.name)")
            let unsigned = precision == .int4 && (layer.name.hasSuffix(".mlp_fc2") || layer.name.hasSuffix(".mlp_context_fc2"))
            #expect(weights.actUnsigned == unsigned && checkpoint.isUnsignedActivationLayer(layer.name) == unsigned, "\(layer.name)")
            #expect(checkpoint.kind(ofLayer: layer.name) == .w4a4)
        }
        for layer in model.awq {
            let weights = try checkpoint.awqWeights(layer.name)
            let (got, want) = (weights.canonical, layer.tensors)
            #expect(TensorValues.bytes(got.qweight) == TensorValues.bytes(want.qweight) && got.qweight.shape == want.qweight.shape)
            #expect(TensorValues.bytes(got.wscales) == TensorValues.bytes(want.wscales) && TensorValues.bytes(got.wzeros) == TensorValues.bytes(want.wzeros))
            #expect(TensorValues.bytes(got.bias!) == TensorValues.bytes(want.bias!))
        }
        for tensor in model.dense {
            #expect(TensorValues.bytes(try checkpoint.denseTensor(tensor.name)) == TensorValues.bytes(tensor.tensor))
            #expect(TensorValues.bytes(try checkpoint.denseTensors.tensor(named: tensor.name)) == TensorValues.bytes(tensor.tensor))
        }
        #expect(checkpoint.denseTensors.tensorNames == checkpoint.denseTensorNames)
    }

    @Test(arguments: Source.allCases)
    func readsTheModelDescription(source: Source) throws {
        let model = SyntheticModel(seed: 3)
        let folder = try ScratchFolder()
        let checkpoint = try SVDQuantCheckpoint(path: source.write(model, in: folder))
        #expect(checkpoint.model.diffusersClass == "FluxTransformer2DModel")
        #expect(checkpoint.model.nunchakuModelClass == "NunchakuFluxTransformer2dModel")
        let expectedNaming: SVDQuantParameterNaming = [.lite, .mergedPythonNames].contains(source) ? .python : .cpp
        #expect(checkpoint.parameterNaming == expectedNaming)
        switch source.container {
        case .nunchakuMerged, .canonical:
            #expect(checkpoint.model.quantizationConfig == model.quantizationConfig && checkpoint.model.comfyConfig != nil)
        case .nunchakuLegacyFolder:
            #expect(checkpoint.model.config == model.config && checkpoint.model.comfyConfig != nil)
        case .nunchakuLite:
            // The Lite config loses its quantization_config when kept as the model config.
            #expect(checkpoint.model.config?.contains("quantization_config") == false)
        }
    }

    @Test func genericModelsKeepTheirOwnNamesAndHaveNoUnsignedLayers() throws {
        let model = SyntheticModel(family: .generic, seed: 11)
        let folder = try ScratchFolder()
        for source in [Source.merged, .lite, .canonicalNatural] {
            let checkpoint = try SVDQuantCheckpoint(path: source.write(model, in: folder))
            #expect(checkpoint.model.family == .generic && checkpoint.parameterNaming == .python)
            #expect(checkpoint.w4a4LayerNames == Self.natural(model.w4a4.map(\.name)))
            #expect(checkpoint.awqLayerNames.isEmpty && checkpoint.denseTensorNames == ["x_embedder.weight"])
            for layer in model.w4a4 {
                #expect(!checkpoint.isUnsignedActivationLayer(layer.name))
                #expect(SVDQW4A4WeightsTests.sameBytes(try checkpoint.w4a4Weights(layer.name).canonical, Self.expected(layer.tensors, from: source)))
            }
        }
    }

    @Test func servesCPULayersByName() throws {
        let model = SyntheticModel(seed: 5)
        let folder = try ScratchFolder()
        let checkpoint = try SVDQuantCheckpoint(path: Source.merged.write(model, in: folder))
        #expect(try checkpoint.linear("transformer_blocks.0.qkv_proj") is SVDQW4A4Linear)
        #expect(try checkpoint.linear("single_transformer_blocks.0.norm.linear") is AWQW4A16Linear)
        let embedder = try checkpoint.linear("x_embedder")
        #expect(embedder is Linear && embedder.inFeatures == 64 && embedder.outFeatures == 128)
        #expect(checkpoint.kind(ofLayer: "proj_out") == .dense && checkpoint.kind(ofLayer: "nothing") == nil)
        #expect(throws: SVDQuantCheckpointError.noSuchLayer(source: checkpoint.source.path, name: "transformer_blocks.0.attn.to_qkv")) {
            try checkpoint.w4a4Weights("transformer_blocks.0.attn.to_qkv")
        }
        #expect(throws: SVDQuantCheckpointError.noSuchLayer(source: checkpoint.source.path, name: "transformer_blocks.0.qkv_proj")) {
            try checkpoint.awqWeights("transformer_blocks.0.qkv_proj")
        }
        // The caller can override the unsigned marking.
        #expect(try checkpoint.w4a4Weights("transformer_blocks.0.mlp_fc2", actUnsigned: false).actUnsigned == false)
    }

    @Test func fluxModuleNamesMapBothWays() {
        let pairs = [
            ("transformer_blocks.12.qkv_proj.qweight", "transformer_blocks.12.attn.to_qkv.qweight"),
            ("transformer_blocks.0.qkv_proj_context", "transformer_blocks.0.attn.add_qkv_proj"),
            ("transformer_blocks.3.out_proj.lora_up", "transformer_blocks.3.attn.to_out.0.lora_up"),
            ("transformer_blocks.3.mlp_context_fc2.bias", "transformer_blocks.3.ff_context.net.2.bias"),
            ("transformer_blocks.1.norm_added_k.weight", "transformer_blocks.1.attn.norm_added_k.weight"),
            ("single_transformer_blocks.37.out_proj.wscales", "single_transformer_blocks.37.attn.to_out.wscales"),
            ("single_transformer_blocks.2.norm_q.weight", "single_transformer_blocks.2.attn.norm_q.weight"),
        ]
        for (cpp, python) in pairs {
            #expect(FluxModuleNames.python(fromCpp: cpp) == python)
            #expect(FluxModuleNames.cpp(fromPython: python) == cpp)
        }
        for unchanged in ["single_transformer_blocks.0.mlp_fc2.qweight", "transformer_blocks.0.norm1.linear.qweight", "proj_out.weight",
                          "transformer_blocks.x.qkv_proj.qweight", "transformer_blocks.0.qkv_projection.weight", "transformer_blocks.4"] {
            #expect(FluxModuleNames.python(fromCpp: unchanged) == unchanged && FluxModuleNames.cpp(fromPython: unchanged) == unchanged)
        }
    }
}
