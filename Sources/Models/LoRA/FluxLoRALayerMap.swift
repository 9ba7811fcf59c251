/// Where a LoRA's diffusers modules live in one loaded FLUX model: every module's shape, and every linear layer of
/// the model as the modules it is made of. Shapes come from the config (nothing assumes FLUX.1's 3072).
///
/// Layers and modules coincide in the diffusers layout; Nunchaku's layout fuses q/k/v into one layer (outputs
/// stacked), renames the block projections, interleaves the adaLN outputs, and splits the single-block `proj_out`
/// by input columns into `out_proj` (attention part) and `mlp_fc2` (MLP part).
public struct FluxLoRALayerMap: Sendable {
    /// A piece of a layer: the module's input columns `columns` are the layer's whole input, and its outputs are the
    /// layer's rows `rowOffset ..< rowOffset + module outFeatures`.
    struct Piece: Sendable, Equatable {
        let module: String
        let columns: Range<Int>
        let rowOffset: Int
    }

    /// One linear layer of the model.
    struct Layer: Sendable {
        let name: String
        let inFeatures: Int
        let outFeatures: Int
        let pieces: [Piece]
        /// The adaLN chunk count when the layer stores its outputs interleaved (row `d·S + s` = chunk s, element d).
        let interleavedChunks: Int?
    }

    /// Module name → (inFeatures, outFeatures).
    let modules: [String: (inFeatures: Int, outFeatures: Int)]
    /// Layer name → layer.
    let layers: [String: Layer]
    /// Module name → the layers holding a piece of it.
    let layersOfModule: [String: [String]]

    /// - Parameters:
    ///   - layout: the block layout the model was loaded with.
    ///   - fuseSeparateQKV: whether separate q/k/v projections are one stacked layer named `<to_q>+k+v` (the CUDA
    ///     model's dense path).
    ///   - interleavedModulation: whether Nunchaku-layout adaLN layers keep their interleaved output order (the CPU
    ///     model; the CUDA model reorders them chunk-major at load).
    init(config: FluxConfig, layout: FluxCheckpointLayout, fuseSeparateQKV: Bool, interleavedModulation: Bool) {
        let width = config.innerDim, mlp = config.mlpHiddenDim
        var modules: [String: (inFeatures: Int, outFeatures: Int)] = [:]
        var layers: [String: Layer] = [:]
        func add(_ name: String, _ inFeatures: Int, _ outFeatures: Int, _ pieces: [Piece], chunks: Int? = nil) {
            layers[name] = Layer(name: name, inFeatures: inFeatures, outFeatures: outFeatures, pieces: pieces, interleavedChunks: chunks)
        }
        func plain(_ layer: String, module: String, _ inFeatures: Int, _ outFeatures: Int, chunks: Int? = nil) {
            modules[module] = (inFeatures, outFeatures)
            add(layer, inFeatures, outFeatures, [Piece(module: module, columns: 0..<inFeatures, rowOffset: 0)], chunks: chunks)
        }
        func qkv(_ layerNames: QKVNames, modules names: [String]) {
            for name in names { modules[name] = (width, width) }
            let stacked = names.enumerated().map { Piece(module: $1, columns: 0..<width, rowOffset: $0 * width) }
            switch layerNames {
            case let .fused(layer): add(layer, width, 3 * width, stacked)
            case let .separate(query, _, _) where fuseSeparateQKV: add("\(query)+k+v", width, 3 * width, stacked)
            case .separate: for name in names { plain(name, module: name, width, width) }
            }
        }
        func modulation(_ layer: String, chunks: Int) {
            let interleaved = layout == .nunchaku && interleavedModulation
            plain(layer, module: layer, width, chunks * width, chunks: interleaved ? chunks : nil)
        }

        plain(FluxTopLevelNames.imageEmbedder, module: FluxTopLevelNames.imageEmbedder, config.inChannels, width)
        plain(FluxTopLevelNames.contextEmbedder, module: FluxTopLevelNames.contextEmbedder, config.jointAttentionDim, width)
        var embedders = [(FluxTopLevelNames.timestepEmbedder, FluxTimeTextEmbedding.sinusoidWidth),
                         (FluxTopLevelNames.textEmbedder, config.pooledProjectionDim)]
        if config.guidanceEmbeds { embedders.append((FluxTopLevelNames.guidanceEmbedder, FluxTimeTextEmbedding.sinusoidWidth)) }
        for (name, inFeatures) in embedders {
            plain("\(name).linear_1", module: "\(name).linear_1", inFeatures, width)
            plain("\(name).linear_2", module: "\(name).linear_2", width, width)
        }
        plain(FluxTopLevelNames.outputModulation, module: FluxTopLevelNames.outputModulation, width, 2 * width)
        plain(FluxTopLevelNames.outputProjection, module: FluxTopLevelNames.outputProjection, width, config.outputFeatures)

        for index in 0..<config.numLayers {
            let m = FluxDoubleBlockNames(index: index, layout: .diffusers), l = FluxDoubleBlockNames(index: index, layout: layout)
            modulation(l.imageModulation, chunks: 6)
            modulation(l.contextModulation, chunks: 6)
            qkv(l.imageQKV, modules: m.imageQKV.layerNames)
            qkv(l.contextQKV, modules: m.contextQKV.layerNames)
            for (layer, module, inFeatures, outFeatures) in [
                (l.imageOut, m.imageOut, width, width), (l.contextOut, m.contextOut, width, width),
                (l.imageMLPIn, m.imageMLPIn, width, mlp), (l.imageMLPOut, m.imageMLPOut, mlp, width),
                (l.contextMLPIn, m.contextMLPIn, width, mlp), (l.contextMLPOut, m.contextMLPOut, mlp, width),
            ] {
                plain(layer, module: module, inFeatures, outFeatures)
            }
        }
        for index in 0..<config.numSingleLayers {
            let m = FluxSingleBlockNames(index: index, layout: .diffusers), l = FluxSingleBlockNames(index: index, layout: layout)
            modulation(l.modulationName, chunks: 3)
            qkv(l.qkv, modules: m.qkv.layerNames)
            plain(l.mlpIn, module: m.mlpIn, width, mlp)
            let output = m.output.layerNames[0]
            switch l.output {
            case let .joint(layer):
                plain(layer, module: output, width + mlp, width)
            case let .split(attention, mlpOut):
                modules[output] = (width + mlp, width)
                add(attention, width, width, [Piece(module: output, columns: 0..<width, rowOffset: 0)])
                add(mlpOut, mlp, width, [Piece(module: output, columns: width..<(width + mlp), rowOffset: 0)])
            }
        }
        self.modules = modules
        self.layers = layers
        var layersOfModule: [String: [String]] = [:]
        for layer in layers.values {
            for piece in layer.pieces { layersOfModule[piece.module, default: []].append(layer.name) }
        }
        self.layersOfModule = layersOfModule.mapValues { $0.sorted() }
    }
}

extension FluxLoRALayerMap {
    /// The layers of a CPU model of `config` in `layout` that `lora` changes, with the rank it adds to each (padded to
    /// 16), sorted by name.
    /// - Throws: `LoRAError` when the LoRA does not fit such a model.
    public static func layersTouched(by lora: LoRAFile, config: FluxConfig, layout: FluxCheckpointLayout) throws -> [(name: String, rank: Int)] {
        let map = FluxLoRALayerMap(config: config, layout: layout, fuseSeparateQKV: false, interleavedModulation: true)
        return try LoRALayerPlan.branches(of: lora, on: map).map { ($0.key, $0.value.rank) }.sorted { $0.name < $1.name }
    }
}
