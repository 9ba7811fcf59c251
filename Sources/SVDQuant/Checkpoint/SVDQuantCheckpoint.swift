import CPUBackend
import NunchakuCore
import SafeTensors

/// An SVDQuant checkpoint in any of the formats this engine reads (docs/svdquant-checkpoints.md): a Nunchaku merged
/// file, a Nunchaku legacy folder, a diffusers Nunchaku-Lite folder, or a canonical (row-major) file; C++- or
/// Python-named. Opening it reads only headers and configs and checks every quantized layer's tensors (presence,
/// shape, dtype, tile multiples, agreement with the quantization config), reporting all problems in one error.
/// Layer weights are then built on request, by name, in the canonical layout the CPU layers use.
///
/// Names are **engine names**: the file's module paths, except that FLUX's Python block names are given as the C++
/// engine's (`transformer_blocks.0.qkv_proj`, `single_transformer_blocks.3.mlp_fc2`, `…norm_q.weight`;
/// `FluxModuleNames`), whatever the file uses.
public final class SVDQuantCheckpoint: @unchecked Sendable {
    /// The files.
    public let source: SafeTensorsCheckpoint
    public let container: SVDQuantContainer
    /// How the W4A4 tensors are stored: Nunchaku's tiles, or canonical with the given per-channel vector order.
    public let layout: SVDQW4A4Layout
    /// Config, model class and family.
    public let model: SVDQuantModelDescription
    /// INT4 or NVFP4; nil only when the checkpoint has no W4A4 layer.
    public let precision: SVDQuantPrecision?
    /// The low-rank branch's rank (every W4A4 layer has it); nil only when the checkpoint has no W4A4 layer.
    public let rank: Int?
    /// How the file names W4A4 parameters.
    public let parameterNaming: SVDQuantParameterNaming
    /// The W4A4 layers' engine names, in natural order (`blocks.2` before `blocks.10`).
    public let w4a4LayerNames: [String]
    /// The AWQ W4A16 layers' engine names, in natural order.
    public let awqLayerNames: [String]
    /// The engine names of every tensor outside the quantized layers, in natural order.
    public let denseTensorNames: [String]

    /// The inputs per quantization group of the W4A4 layers (64 INT4, 16 NVFP4).
    public var groupSize: Int? { precision?.groupSize }

    private let inventory: LayerInventory

    /// Opens the checkpoint at `path` (a file, a folder, or a shard index).
    public convenience init(path: String) throws {
        try self.init(SafeTensorsCheckpoint(path: path))
    }

    /// - Throws: `SVDQuantCheckpointError.notSVDQuant` for other formats, `.invalidConfig` for a malformed or
    ///   self-contradicting config, `.invalidTensors` listing every missing, unexpected, mis-shaped or mistyped tensor
    ///   of the quantized layers; `CheckpointFormatError`/`SafeTensorsError` when files cannot be read.
    public init(_ source: SafeTensorsCheckpoint) throws {
        let format = try detectCheckpointFormat(source)
        let container: SVDQuantContainer
        let parameters: SVDQuantParameters
        switch format {
        case let .nunchakuMerged(declared, _): (container, parameters) = (.nunchakuMerged, declared)
        case let .nunchakuLegacyFolder(declared): (container, parameters) = (.nunchakuLegacyFolder, declared)
        case let .nunchakuLite(declared, _): (container, parameters) = (.nunchakuLite, declared)
        case let .canonicalSVDQuant(declared, _): (container, parameters) = (.canonical, declared)
        case .svdquantTensors:
            throw SVDQuantCheckpointError.notSVDQuant(
                source: source.path,
                format: "\(format.title); a Nunchaku merged file needs quantization_config metadata, and a legacy or Nunchaku-Lite folder must be opened as the folder, not one of its files")
        case .dense, .lora, .unrecognized:
            throw SVDQuantCheckpointError.notSVDQuant(source: source.path, format: format.title)
        }
        let (model, lite) = try SVDQuantModelDescription.read(source, container: container)
        let inferred = Set(parameters.inferredFields)
        let declaredBy = container == .nunchakuLite ? "the quantization_config in config.json" : "the quantization_config metadata"
        if let precision = parameters.precision, let groupSize = parameters.groupSize, !inferred.contains("group size"),
           groupSize != precision.groupSize {
            throw SVDQuantCheckpointError.invalidConfig(
                source: source.path, reason: "\(declaredBy) gives group size \(groupSize); \(precision) uses groups of \(precision.groupSize)")
        }
        self.source = source
        self.container = container
        self.layout = container == .canonical ? .canonical(vectorOrder: try Self.vectorOrder(of: source)) : .nunchaku
        self.model = model
        let expectations = LayerInventory.Expectations(
            source: source.path, family: model.family, container: container,
            precision: lite.map { $0.w4a4?.precision } ?? parameters.precision,
            rank: lite.map { $0.w4a4?.rank } ?? parameters.rank,
            precisionOrigin: inferred.contains("precision") ? "the checkpoint's other layers" : declaredBy,
            rankOrigin: inferred.contains("rank") ? "the first layer" : declaredBy,
            lite: lite)
        inventory = try LayerInventory(infos: source.files().flatMap(\.tensorInfos), expecting: expectations)
        parameterNaming = inventory.naming
        precision = inventory.w4a4.isEmpty ? nil : expectations.precision
        rank = inventory.w4a4.isEmpty ? nil : expectations.rank
        let natural = { (names: [String]) in names.sorted(by: CheckpointInventory.naturallyPrecedes) }
        w4a4LayerNames = natural(Array(inventory.w4a4.keys))
        awqLayerNames = natural(Array(inventory.awq.keys))
        denseTensorNames = natural(Array(inventory.dense.keys))
    }

    // MARK: Layers by name

    /// What kind of layer `name` is: a W4A4 or AWQ layer, a dense linear (`name.weight` among the dense tensors), or nil.
    public func kind(ofLayer name: String) -> SVDQuantLayerKind? {
        if inventory.w4a4[name] != nil { return .w4a4 }
        if inventory.awq[name] != nil { return .awq }
        return inventory.dense[name + ".weight"] != nil ? .dense : nil
    }

    /// Whether the kernel quantizes `name`'s activations unsigned (after adding 0.171875): INT4 FLUX `mlp_fc2` and
    /// `mlp_context_fc2`, which GELU feeds (research/nunchaku-internals.md §3.6). Checkpoints do not store this.
    public func isUnsignedActivationLayer(_ name: String) -> Bool {
        guard model.family == .flux, precision == .int4, inventory.w4a4[name] != nil else { return false }
        return name.hasSuffix(".mlp_fc2") || name.hasSuffix(".mlp_context_fc2")
    }

    /// The weights of W4A4 layer `name`, validated, in the canonical layout. `actUnsigned` overrides
    /// `isUnsignedActivationLayer(name)`.
    /// - Throws: `.noSuchLayer`, or `NunchakuError` naming `name.<tensor>` for bad values (non-finite scales, zero
    ///   smoothing factors, negative micro-scales, a `wtscale` that is not finite and positive).
    public func w4a4Weights(_ name: String, actUnsigned: Bool? = nil) throws -> SVDQW4A4Weights {
        try SVDQW4A4Weights(
            name: name, tensors: storedW4A4Tensors(name), layout: layout,
            actUnsigned: actUnsigned ?? isUnsignedActivationLayer(name))
    }

    /// The weights of AWQ layer `name`, validated, with codes unpacked. Output channels stay in the file's order:
    /// for Nunchaku's adaLN layers that is the interleaved order with the folded "+1" (docs/svdquant-layouts.md).
    public func awqWeights(_ name: String) throws -> AWQW4A16Weights {
        try AWQW4A16Weights(name: name, tensors: storedAWQTensors(name), layout: container == .canonical ? .canonical : .nunchaku)
    }

    /// A tensor outside the quantized layers, by engine name (a view into the file).
    public func denseTensor(_ name: String) throws -> Tensor {
        try source.tensor(denseFileName(name))
    }

    /// The tensors outside the quantized layers as a `TensorProvider` with engine names, for model loaders that
    /// read their unquantized weights strictly.
    public var denseTensors: SVDQuantDenseTensors { SVDQuantDenseTensors(checkpoint: self) }

    /// A CPU layer for `name`: `SVDQW4A4Linear`, `AWQW4A16Linear`, or `Linear` over the dense `name.weight` (and
    /// `name.bias` when present).
    public func linear(_ name: String) throws -> any LinearLayer {
        switch kind(ofLayer: name) {
        case .w4a4: return SVDQW4A4Linear(weights: try w4a4Weights(name))
        case .awq: return AWQW4A16Linear(weights: try awqWeights(name))
        case .dense:
            let bias = inventory.dense[name + ".bias"] != nil ? try denseTensor(name + ".bias") : nil
            return try Linear(name: name, weight: denseTensor(name + ".weight"), bias: bias)
        case nil: throw SVDQuantCheckpointError.noSuchLayer(source: source.path, name: name)
        }
    }

    // MARK: Stored tensors (for conversion)

    /// W4A4 layer `name`'s tensors as stored (`layout`). Nunchaku-Lite always stores `wcscales` and `wtscale` for
    /// NVFP4; all-ones values there mean "none", and are returned as absent.
    func storedW4A4Tensors(_ name: String) throws -> SVDQW4A4Tensors {
        guard let layer = inventory.w4a4[name] else { throw SVDQuantCheckpointError.noSuchLayer(source: source.path, name: name) }
        func tensor(_ role: W4A4TensorRole) throws -> Tensor? { try layer.tensors[role].map { try source.tensor($0) } }
        var tensors = SVDQW4A4Tensors(
            qweight: try tensor(.qweight)!, wscales: try tensor(.wscales)!, wtscale: try tensor(.wtscale),
            wcscales: try tensor(.wcscales), bias: try tensor(.bias), smooth: try tensor(.smooth)!,
            smoothOrig: try tensor(.smoothOrig), projDown: try tensor(.projDown)!, projUp: try tensor(.projUp)!)
        if container == .nunchakuLite {
            if let wcscales = tensors.wcscales, TensorValues.floats(wcscales).allSatisfy({ $0 == 1 }) { tensors.wcscales = nil }
            if let wtscale = tensors.wtscale, TensorValues.floats(wtscale) == [1] { tensors.wtscale = nil }
        }
        return tensors
    }

    /// AWQ layer `name`'s tensors as stored.
    func storedAWQTensors(_ name: String) throws -> AWQW4A16Tensors {
        guard let layer = inventory.awq[name] else { throw SVDQuantCheckpointError.noSuchLayer(source: source.path, name: name) }
        return AWQW4A16Tensors(
            qweight: try source.tensor(layer.tensors[.qweight]!), wscales: try source.tensor(layer.tensors[.wscales]!),
            wzeros: try source.tensor(layer.tensors[.wzeros]!), bias: try layer.tensors[.bias].map { try source.tensor($0) })
    }

    /// The file's name of dense tensor `name`.
    func denseFileName(_ name: String) throws -> String {
        guard let fileName = inventory.dense[name] else { throw SVDQuantCheckpointError.noSuchLayer(source: source.path, name: name) }
        return fileName
    }

    /// The canonical file's `nunchaku_vector_order` metadata.
    private static func vectorOrder(of source: SafeTensorsCheckpoint) throws -> ChannelVectorOrder {
        let metadata = try source.files().compactMap(\.metadata).first { $0["nunchaku_layout"] != nil } ?? [:]
        guard let text = metadata["nunchaku_vector_order"], let order = ChannelVectorOrder(rawValue: text) else {
            throw SVDQuantCheckpointError.invalidConfig(
                source: source.path,
                reason: "a canonical file needs nunchaku_vector_order metadata \"natural\" or \"nunchaku\", found \(metadata["nunchaku_vector_order"].map { "\"\($0)\"" } ?? "none")")
        }
        return order
    }
}

/// The kinds of layers a checkpoint serves.
public enum SVDQuantLayerKind: String, Sendable, Equatable {
    /// SVDQuant 4-bit weights and activations.
    case w4a4
    /// AWQ 4-bit weights, 16-bit activations (adaLN modulation).
    case awq
    /// A plain 16-bit (or 32-bit) linear.
    case dense
}

/// The tensors of an `SVDQuantCheckpoint` outside its quantized layers, by engine name.
public struct SVDQuantDenseTensors: TensorProvider, Sendable {
    public let checkpoint: SVDQuantCheckpoint

    public var tensorNames: [String] { checkpoint.denseTensorNames }

    public func tensor(named name: String) throws -> Tensor { try checkpoint.denseTensor(name) }
}
