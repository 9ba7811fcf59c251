import CPUBackend
import NunchakuCore
import SVDQuant

/// Rewrites unquantized diffusers FLUX weights into Nunchaku's block layout (`FluxCheckpointLayout.nunchaku`): the
/// dense equivalent of a Nunchaku checkpoint, with the same names, fusions, interleaving and +1 folding, so the
/// quantized path differs only in how each layer stores its weight (research: nunchaku-internals §1.4, §2.7).
public enum FluxNunchakuLayout {
    /// The Nunchaku-layout weights for a diffusers checkpoint of `config`. Tensors outside the blocks keep their
    /// names; tensors this conversion does not know are passed through unchanged (a strict load then reports them).
    public static func convert(diffusers weights: any TensorProvider, config: FluxConfig) throws -> [String: Tensor] {
        var remaining = [String: Tensor]()
        for name in weights.tensorNames { remaining[name] = try weights.tensor(named: name) }
        var result = [String: Tensor]()
        func take(_ name: String) throws -> Tensor {
            guard let tensor = remaining.removeValue(forKey: name) else {
                throw NunchakuError.invalidArgument(context: name, reason: "missing from the diffusers checkpoint")
            }
            return tensor
        }
        func move(_ from: String, _ to: String) throws {
            for suffix in [".weight", ".bias"] { result[to + suffix] = try take(from + suffix) }
        }
        func fuse(_ parts: [String], _ to: String) throws {
            result["\(to).weight"] = try concatRows(parts.map { try take("\($0).weight") })
            result["\(to).bias"] = try concatRows(parts.map { try take("\($0).bias") })
        }
        func modulation(_ name: String, chunks: Int) throws {
            let weight = try take("\(name).weight"), bias = try take("\(name).bias")
            let interleave = try ModulationInterleave(chunks: chunks)
            result["\(name).weight"] = try interleaveRows(weight, interleave, "\(name).weight")
            result["\(name).bias"] = try interleaveRows(
                addOne(bias, toChunks: interleave.scaleChunks, of: chunks), interleave, "\(name).bias")
        }
        func rename(_ from: String, _ to: String) throws { result[to] = try take(from) }

        for index in 0..<config.numLayers {
            let diffusers = FluxDoubleBlockNames(index: index, layout: .diffusers)
            let nunchaku = FluxDoubleBlockNames(index: index, layout: .nunchaku)
            try modulation(diffusers.imageModulation, chunks: 6)
            try modulation(diffusers.contextModulation, chunks: 6)
            try fuse(diffusers.imageQKV.layerNames, nunchaku.imageQKV.layerNames[0])
            try fuse(diffusers.contextQKV.layerNames, nunchaku.contextQKV.layerNames[0])
            for (from, to) in [(diffusers.imageOut, nunchaku.imageOut), (diffusers.contextOut, nunchaku.contextOut),
                               (diffusers.imageMLPIn, nunchaku.imageMLPIn), (diffusers.imageMLPOut, nunchaku.imageMLPOut),
                               (diffusers.contextMLPIn, nunchaku.contextMLPIn), (diffusers.contextMLPOut, nunchaku.contextMLPOut)] {
                try move(from, to)
            }
            for (from, to) in [(diffusers.queryNorm, nunchaku.queryNorm), (diffusers.keyNorm, nunchaku.keyNorm),
                               (diffusers.contextQueryNorm, nunchaku.contextQueryNorm),
                               (diffusers.contextKeyNorm, nunchaku.contextKeyNorm)] {
                try rename(from, to)
            }
        }
        for index in 0..<config.numSingleLayers {
            let diffusers = FluxSingleBlockNames(index: index, layout: .diffusers)
            let nunchaku = FluxSingleBlockNames(index: index, layout: .nunchaku)
            try modulation(diffusers.modulationName, chunks: 3)
            try fuse(diffusers.qkv.layerNames, nunchaku.qkv.layerNames[0])
            try move(diffusers.mlpIn, nunchaku.mlpIn)
            let projection = diffusers.output.layerNames[0]
            let (attention, mlp) = (nunchaku.output.layerNames[0], nunchaku.output.layerNames[1])
            // proj_out [D, D + 4D] splits by input columns; the bias goes with the MLP half (Nunchaku: out_proj has none).
            let columns = try CPUOps.splitLastDimension(take("\(projection).weight"), sizes: [config.innerDim, config.mlpHiddenDim])
            let bias = try take("\(projection).bias")
            result["\(attention).weight"] = columns[0]
            result["\(attention).bias"] = Tensor(zeros: bias.shape, dtype: bias.dtype)
            result["\(mlp).weight"] = columns[1]
            result["\(mlp).bias"] = bias
            try rename(diffusers.queryNorm, nunchaku.queryNorm)
            try rename(diffusers.keyNorm, nunchaku.keyNorm)
        }
        return result.merging(remaining) { converted, _ in converted }
    }

    /// Stacks tensors along axis 0 (weights `[Nᵢ, K]` or biases `[Nᵢ]`).
    private static func concatRows(_ parts: [Tensor]) throws -> Tensor {
        let trailing = Array(parts[0].shape.dropFirst())
        let stacked = try CPUOps.concatTokens(parts.map { try $0.reshaped([1, $0.shape[0]] + (trailing.isEmpty ? [1] : trailing)) })
        return try stacked.reshaped([stacked.shape[1]] + trailing)
    }

    /// Moves natural row `s·D + d` to row `d·S + s` (S = `interleave.chunks`; rows are whole elements of dim 0).
    private static func interleaveRows(_ tensor: Tensor, _ interleave: ModulationInterleave, _ name: String) throws -> Tensor {
        let source = tensor.contiguous()
        let rows = source.shape.first ?? 0
        guard rows > 0, rows % interleave.chunks == 0 else {
            throw NunchakuError.invalidArgument(context: name, reason: "shape \(source.shape) does not hold \(interleave.chunks) equal chunks")
        }
        let rowBytes = source.byteCount / rows
        var result = Tensor(zeros: source.shape, dtype: source.dtype)
        source.withUnsafeBytes { input in
            result.withUnsafeMutableBytes { output in
                for row in 0..<rows {
                    output.baseAddress!.advanced(by: interleave.packedChannel(row, outputs: rows) * rowBytes)
                        .copyMemory(from: input.baseAddress!.advanced(by: row * rowBytes), byteCount: rowBytes)
                }
            }
        }
        return result
    }

    /// `bias` with 1 added to the given chunks (rounded to the bias dtype), so `x·scale+shift` equals diffusers' `x·(1+scale)+shift`.
    private static func addOne(_ bias: Tensor, toChunks scaleChunks: [Int], of chunks: Int) throws -> Tensor {
        var values = try bias.floatValues(context: "adaLN bias")
        let width = values.count / chunks
        for chunk in scaleChunks {
            for d in 0..<width { values[chunk * width + d] += 1 }
        }
        return Tensor.rounding(values, shape: bias.shape, to: bias.dtype)
    }
}
