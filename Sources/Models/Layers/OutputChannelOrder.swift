import NunchakuCore
import SVDQuant

/// Moves the output channels (rows of a `[N, …]` weight, elements of a `[N]` bias) of an adaLN layer between
/// Nunchaku's interleaved order and the natural one: stored row `d·S + s` ↔ natural row `s·D + d`
/// (`ModulationInterleave`, research/nunchaku-internals.md §2.7).
enum OutputChannelOrder {
    /// `tensor` with its rows taken from the interleaved order to the natural one.
    static func natural(_ tensor: Tensor, _ interleave: ModulationInterleave, context: String) throws -> Tensor {
        try reorder(tensor, interleave, toNatural: true, context: context)
    }

    /// `tensor` with its rows taken from the natural order to the interleaved one.
    static func interleaved(_ tensor: Tensor, _ interleave: ModulationInterleave, context: String) throws -> Tensor {
        try reorder(tensor, interleave, toNatural: false, context: context)
    }

    /// - Throws: `NunchakuError` naming `context` when the first dimension is not a positive multiple of the chunks.
    private static func reorder(_ tensor: Tensor, _ interleave: ModulationInterleave, toNatural: Bool, context: String) throws -> Tensor {
        let source = tensor.contiguous()
        let rows = source.shape.first ?? 0
        guard rows > 0, rows % interleave.chunks == 0 else {
            throw NunchakuError.invalidArgument(
                context: context, reason: "shape \(source.shape) cannot hold \(interleave.chunks) interleaved output chunks")
        }
        let rowBytes = source.byteCount / rows
        var result = Tensor(zeros: source.shape, dtype: source.dtype)
        source.withUnsafeBytes { input in
            result.withUnsafeMutableBytes { output in
                for natural in 0..<rows {
                    let stored = interleave.packedChannel(natural, outputs: rows)
                    let (from, to) = toNatural ? (stored, natural) : (natural, stored)
                    output.baseAddress!.advanced(by: to * rowBytes)
                        .copyMemory(from: input.baseAddress!.advanced(by: from * rowBytes), byteCount: rowBytes)
                }
            }
        }
        return result
    }
}
