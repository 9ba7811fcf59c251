import NunchakuCore

/// Checks, from the tensor names alone, that a checkpoint holds exactly the blocks its config describes. A config
/// that belongs to other weights, or a checkpoint with a block cut out, is then reported as such instead of as a
/// long list of missing tensors.
enum FluxBlockInventory {
    /// - Throws: `NunchakuError.invalidArgument` naming `source`, the config key, and the blocks that are missing or
    ///   beyond the config.
    static func check(_ names: [String], config: FluxConfig, source: String) throws {
        var problems: [String] = []
        for (prefix, count, key) in [("transformer_blocks", config.numLayers, "num_layers"),
                                     ("single_transformer_blocks", config.numSingleLayers, "num_single_layers")] {
            let found = blockIndices(names, prefix: prefix)
            let expected = Set(0..<count)
            guard found != expected else { continue }
            var parts = ["config \(key) = \(count), but the checkpoint holds \(found.count) \(prefix)"]
            let missing = expected.subtracting(found).sorted(), extra = found.subtracting(expected).sorted()
            if !missing.isEmpty { parts.append("missing: \(list(prefix, missing))") }
            if !extra.isEmpty { parts.append("beyond the config: \(list(prefix, extra))") }
            problems.append(parts.joined(separator: "; "))
        }
        guard problems.isEmpty else {
            throw NunchakuError.invalidArgument(
                context: source,
                reason: problems.joined(separator: ". ")
                    + ". The config does not describe these weights (wrong config.json or metadata), or the checkpoint is incomplete")
        }
    }

    /// The block numbers i of every `<prefix>.i.…` name.
    private static func blockIndices(_ names: [String], prefix: String) -> Set<Int> {
        var indices = Set<Int>()
        for name in names where name.hasPrefix(prefix + ".") {
            let rest = name.dropFirst(prefix.count + 1)
            if let dot = rest.firstIndex(of: "."), let index = Int(rest[..<dot]) { indices.insert(index) }
        }
        return indices
    }

    /// `prefix.a, prefix.b, …` (at most 8 named).
    private static func list(_ prefix: String, _ indices: [Int]) -> String {
        let named = indices.prefix(8).map { "\(prefix).\($0)" }.joined(separator: ", ")
        return indices.count > 8 ? named + " and \(indices.count - 8) more" : named
    }
}
