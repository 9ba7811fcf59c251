/// Turns a LoRA file into the low-rank branch it adds to each layer of one model (strength 1, scale folded into
/// `up`), checking everything first: keys that match no module, modules of another width, fused pairs whose rows do
/// not split into their modules.
enum LoRALayerPlan {
    /// One pair's contribution to one diffusers module: `down` `[rank, module in]`, `up` `[module out, rank]` with the
    /// pair's scale folded in. Pieces split from one fused pair share `group`, and so their down.
    private struct Delta {
        let module: String
        let down: [Float]
        let up: [Float]
        let rank: Int
        let group: Int
    }

    /// The branch of every layer the LoRA touches, by layer name.
    /// - Throws: `LoRAError` listing every key that matches no module of this model and every shape that differs.
    static func branches(of lora: LoRAFile, on map: FluxLoRALayerMap) throws -> [String: LowRankBranch] {
        var problems: [String] = []
        var deltas: [String: [Delta]] = [:]
        for (group, pair) in lora.pairs.enumerated() {
            guard let target = LoRATarget(key: pair.key, format: pair.format) else {
                problems.append("\(pair.key): matches no FLUX transformer layer (\(pair.format) naming)")
                continue
            }
            let missing = target.modules.filter { map.modules[$0] == nil }
            guard missing.isEmpty else {
                problems.append("\(pair.key): matches no layer of this model (\(missing.joined(separator: ", ")))")
                continue
            }
            let shapes = target.modules.map { map.modules[$0]! }
            let rows = shapes.map(\.outFeatures)
            guard shapes.allSatisfy({ $0.inFeatures == pair.inFeatures }), rows.reduce(0, +) == pair.outFeatures else {
                let expected = shapes.map { "\($0.outFeatures)×\($0.inFeatures)" }.joined(separator: " + ")
                problems.append(
                    "\(pair.key): is \(pair.outFeatures)×\(pair.inFeatures) (up rows × down columns), but \(target.modules.joined(separator: " + ")) of this model is \(expected): a LoRA for another model size or architecture")
                continue
            }
            var up = pair.up.map { $0 * pair.scale }
            if case .swappedHalves = target {
                let half = pair.outFeatures / 2 * pair.rank
                up = Array(up[half...] + up[..<half])
            }
            var rowOffset = 0
            for (module, count) in zip(target.modules, rows) {
                let slice = Array(up[(rowOffset * pair.rank)..<((rowOffset + count) * pair.rank)])
                deltas[module, default: []].append(Delta(module: module, down: pair.down, up: slice, rank: pair.rank, group: group))
                rowOffset += count
            }
        }
        guard problems.isEmpty else { throw LoRAError(file: lora.source, problems: problems) }
        var layerNames = Set<String>()
        for module in deltas.keys { layerNames.formUnion(map.layersOfModule[module] ?? []) }
        var result: [String: LowRankBranch] = [:]
        for name in layerNames {
            result[name] = branch(for: map.layers[name]!, deltas: deltas, moduleWidths: map.modules)
        }
        return result
    }

    /// The layer's branch: one rank block per group (pieces of one fused pair share the block), blocks side by side.
    private static func branch(
        for layer: FluxLoRALayerMap.Layer, deltas: [String: [Delta]], moduleWidths: [String: (inFeatures: Int, outFeatures: Int)]
    ) -> LowRankBranch {
        var blocks: [(group: Int, rank: Int, columns: Range<Int>, moduleIn: Int, down: [Float], rows: [(offset: Int, up: [Float], count: Int)])] = []
        for piece in layer.pieces {
            for delta in deltas[piece.module] ?? [] {
                let count = moduleWidths[piece.module]!.outFeatures
                if let index = blocks.firstIndex(where: { $0.group == delta.group && $0.columns == piece.columns }) {
                    blocks[index].rows.append((piece.rowOffset, delta.up, count))
                } else {
                    blocks.append((delta.group, delta.rank, piece.columns, moduleWidths[piece.module]!.inFeatures, delta.down,
                                   [(piece.rowOffset, delta.up, count)]))
                }
            }
        }
        let k = layer.inFeatures, n = layer.outFeatures
        let rank = LowRankBranch.paddedRank(blocks.reduce(0) { $0 + $1.rank })
        var down = [Float](repeating: 0, count: rank * k), up = [Float](repeating: 0, count: n * rank)
        var offset = 0
        for block in blocks {
            for r in 0..<block.rank {
                for (column, source) in block.columns.enumerated() { down[(offset + r) * k + column] = block.down[r * block.moduleIn + source] }
            }
            for part in block.rows {
                for row in 0..<part.count {
                    let stored = layer.interleavedChunks.map { Self.interleavedRow(row + part.offset, rows: n, chunks: $0) } ?? (row + part.offset)
                    for r in 0..<block.rank { up[stored * rank + offset + r] = part.up[row * block.rank + r] }
                }
            }
            offset += block.rank
        }
        return LowRankBranch(rank: rank, inFeatures: k, outFeatures: n, down: down, up: up)
    }

    /// Where chunk-major row `s·D + d` is stored in an interleaved adaLN layer: row `d·S + s`.
    private static func interleavedRow(_ row: Int, rows: Int, chunks: Int) -> Int {
        let width = rows / chunks
        return (row % width) * chunks + row / width
    }
}
