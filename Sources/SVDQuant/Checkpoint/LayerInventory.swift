import SafeTensors

/// The quantized layers and dense tensors of a checkpoint, worked out from its header alone. Every tensor of every
/// quantized layer is checked for presence, shape and dtype against its format and quantization config; all problems
/// are reported together.
///
/// Layers are keyed by their engine name: the file's module path, except that FLUX Python block names become C++
/// names (`FluxModuleNames`). Tensor names inside the records are the file's.
struct LayerInventory: Sendable {
    struct W4A4Layer: Sendable {
        /// The file's tensor name for each role present.
        let tensors: [W4A4TensorRole: String]
    }

    struct AWQLayer: Sendable {
        /// The file's tensor name for each role present.
        let tensors: [AWQTensorRole: String]
    }

    /// What the checkpoint declares, to check the tensors against.
    struct Expectations {
        let source: String
        let family: SVDQuantModelFamily
        let container: SVDQuantContainer
        let precision: SVDQuantPrecision?
        let rank: Int?
        /// Where `precision` and `rank` come from, for errors ("the quantization_config", "the first layer").
        let precisionOrigin: String
        let rankOrigin: String
        let lite: LiteQuantizationConfig?
    }

    let w4a4: [String: W4A4Layer]
    let awq: [String: AWQLayer]
    /// Engine name → file name of every tensor outside the quantized layers.
    let dense: [String: String]
    /// How the file names W4A4 parameters.
    let naming: SVDQuantParameterNaming

    private enum Kind { case w4a4, awq, untargeted }

    /// - Throws: `SVDQuantCheckpointError.invalidTensors` listing every problem found.
    init(infos: [TensorInfo], expecting expected: Expectations) throws {
        var problems: [TensorProblem] = []
        let flux = expected.family == .flux
        let engineName = { (name: String) in flux ? FluxModuleNames.cpp(fromPython: name) : name }
        var infoByEngine: [String: TensorInfo] = [:]
        for info in infos {
            let engine = engineName(info.name)
            if let other = infoByEngine[engine] {
                problems.append(.invalid(tensor: info.name, reason: "stands for the same tensor (\(engine)) as \(other.name)"))
                continue
            }
            infoByEngine[engine] = info
        }

        // Which module paths are quantized layers, and of which kind.
        let qweightLayers = infoByEngine.keys.filter { $0.hasSuffix(".qweight") }.map { String($0.dropLast(".qweight".count)) }
        var kinds: [String: Kind] = [:]
        var liteTargetNames: [String: String] = [:]
        if let lite = expected.lite {
            for (targets, kind) in [(lite.w4a4?.targets ?? [], Kind.w4a4), (lite.awqTargets, .awq)] {
                for target in targets {
                    let engine = engineName(target)
                    if kinds[engine] != nil {
                        problems.append(.invalid(tensor: target, reason: "is listed twice among the quantization_config targets"))
                    }
                    kinds[engine] = kind
                    liteTargetNames[engine] = target
                }
            }
            for layer in qweightLayers where kinds[layer] == nil { kinds[layer] = .untargeted }
        } else {
            // AWQ layers have zero points, and (outside the canonical layout) TinyChat's int32 qweight.
            for layer in qweightLayers {
                let awq = infoByEngine[layer + ".wzeros"] != nil || infoByEngine[layer + ".qweight"]?.dtype == .i32
                kinds[layer] = awq ? .awq : .w4a4
            }
        }

        // Every tensor belongs to the innermost quantized layer whose path prefixes it, or is dense.
        var members: [String: [(parameter: String, info: TensorInfo)]] = [:]
        var dense: [String: String] = [:]
        for (engine, info) in infoByEngine {
            if let (layer, parameter) = Self.owningLayer(of: engine, in: kinds) {
                members[layer, default: []].append((parameter, info))
            } else {
                dense[engine] = info.name
            }
        }
        naming = Self.parameterNaming(members: members, kinds: kinds, expected: expected)

        var w4a4: [String: W4A4Layer] = [:], awq: [String: AWQLayer] = [:]
        for (engineLayer, kind) in kinds {
            let tensors = (members[engineLayer] ?? []).sorted { $0.info.name < $1.info.name }
            let filePrefix = tensors.first.map { String($0.info.name.dropLast($0.parameter.count + 1)) }
                ?? liteTargetNames[engineLayer] ?? engineLayer
            switch kind {
            case .untargeted:
                problems.append(.invalid(
                    tensor: filePrefix + ".qweight", reason: "is a quantized layer that the quantization_config does not list as a target"))
            case .w4a4:
                var check = LayerCheck(filePrefix: filePrefix, tensors: tensors, expected: expected)
                if let layer = check.w4a4(naming: naming) { w4a4[engineLayer] = layer }
                problems += check.problems
            case .awq:
                var check = LayerCheck(filePrefix: filePrefix, tensors: tensors, expected: expected)
                if let layer = check.awq() { awq[engineLayer] = layer }
                problems += check.problems
            }
        }
        guard problems.isEmpty else {
            throw SVDQuantCheckpointError.invalidTensors(
                source: expected.source,
                problems: problems.sorted { CheckpointInventory.naturallyPrecedes($0.tensor, $1.tensor) })
        }
        self.w4a4 = w4a4
        self.awq = awq
        self.dense = dense
    }

    /// The layer whose module path is the longest dotted prefix of `name`, and the rest of `name`.
    private static func owningLayer(of name: String, in kinds: [String: Kind]) -> (String, String)? {
        var end = name.endIndex
        while let dot = name[..<end].lastIndex(of: ".") {
            let prefix = String(name[..<dot])
            if kinds[prefix] != nil { return (prefix, String(name[name.index(after: dot)...])) }
            end = dot
        }
        return nil
    }

    /// Nunchaku-Lite is always Python-named; otherwise the scheme most W4A4 parameter names follow (the family's
    /// usual one on a tie). Names of the other scheme are then reported as unexpected.
    private static func parameterNaming(
        members: [String: [(parameter: String, info: TensorInfo)]], kinds: [String: Kind], expected: Expectations
    ) -> SVDQuantParameterNaming {
        if expected.container == .nunchakuLite { return .python }
        var votes: [SVDQuantParameterNaming: Int] = [:]
        for (layer, tensors) in members where kinds[layer] == .w4a4 {
            for tensor in tensors {
                if let scheme = SVDQuantParameterNaming.scheme(distinguishedBy: tensor.parameter) { votes[scheme, default: 0] += 1 }
            }
        }
        let usual: SVDQuantParameterNaming = expected.family == .flux ? .cpp : .python
        let other: SVDQuantParameterNaming = usual == .cpp ? .python : .cpp
        return votes[other, default: 0] > votes[usual, default: 0] ? other : usual
    }
}
