import NunchakuCore

extension CUDAContext {
    /// Concatenates `[B, Sᵢ, …]` tensors of one dtype along the token axis into `output` (`[B, ΣSᵢ, …]`). Bytes are
    /// copied, so any dtype works; 16-byte copies when a token's size is a multiple of 16 bytes, byte copies otherwise.
    /// - Throws: `NunchakuError` naming the part whose dtype or shape does not fit, before launching.
    public func concatTokens(_ parts: [DeviceTensor], into output: DeviceTensor, stream: CUDAStream? = nil) throws {
        let op = "concatTokens"
        let layout = try TokenLayout(output, op)
        var first = 0
        for (index, part) in parts.enumerated() {
            try layout.check(part, "part \(index)", op)
            try OperandCheck.distinct(output, part, op)
            first += part.shape[1]
        }
        guard first == layout.tokens else {
            throw NunchakuError.invalidArgument(
                context: op, reason: "the parts hold \(first) tokens, the output \(output.shape) has \(layout.tokens)")
        }
        first = 0
        for part in parts {
            try copyTokens(layout, from: part, sourceFirst: 0, sourceTokens: part.shape[1], to: output, destinationFirst: first,
                           destinationTokens: layout.tokens, count: part.shape[1], stream: stream ?? output.buffer.workStream)
            first += part.shape[1]
        }
    }

    /// Splits a `[B, S, …]` tensor along the token axis into `outputs` (`[B, Sᵢ, …]`, ΣSᵢ = S), in order.
    /// - Throws: `NunchakuError` naming the piece whose dtype or shape does not fit, before launching.
    public func splitTokens(_ x: DeviceTensor, into outputs: [DeviceTensor], stream: CUDAStream? = nil) throws {
        let op = "splitTokens"
        let layout = try TokenLayout(x, op)
        var first = 0
        for (index, piece) in outputs.enumerated() {
            try layout.check(piece, "piece \(index)", op)
            try OperandCheck.distinct(piece, x, op)
            first += piece.shape[1]
        }
        guard first == layout.tokens else {
            throw NunchakuError.invalidArgument(
                context: op, reason: "the pieces hold \(first) tokens, the input \(x.shape) has \(layout.tokens)")
        }
        first = 0
        for piece in outputs {
            try copyTokens(layout, from: x, sourceFirst: first, sourceTokens: layout.tokens, to: piece, destinationFirst: 0,
                           destinationTokens: piece.shape[1], count: piece.shape[1], stream: stream ?? x.buffer.workStream)
            first += piece.shape[1]
        }
    }

    private func copyTokens(_ layout: TokenLayout, from source: DeviceTensor, sourceFirst: Int, sourceTokens: Int,
                            to destination: DeviceTensor, destinationFirst: Int, destinationTokens: Int, count: Int,
                            stream: CUDAStream) throws {
        let units = layout.batch * count * layout.tokenBytes
        guard units > 0 else { return }
        let wide = layout.tokenBytes % 16 == 0
        let unitsPerToken = wide ? layout.tokenBytes / 16 : layout.tokenBytes
        let (grid, block) = gridStrideLaunch(items: layout.batch * count * unitsPerToken)
        try kernels.kernel(wide ? "nunchaku_copy_tokens_16b" : "nunchaku_copy_tokens_1b").launch(
            grid: grid, block: block, stream: stream,
            arguments: [source.argument, destination.argument, .int64(Int64(layout.batch)), .int64(Int64(count)),
                        .int64(Int64(unitsPerToken)), .int64(Int64(sourceTokens)), .int64(Int64(sourceFirst)),
                        .int64(Int64(destinationTokens)), .int64(Int64(destinationFirst))])
    }
}

/// The `[B, S, …]` geometry shared by the tensors of a token concat or split.
struct TokenLayout {
    let batch: Int
    let tokens: Int
    let trailing: [Int]
    let dtype: DType
    /// Bytes per token (the product of the trailing dimensions times the element size).
    let tokenBytes: Int

    init(_ whole: DeviceTensor, _ op: String) throws {
        guard whole.shape.count >= 2, !whole.dtype.isPacked4Bit else {
            throw NunchakuError.invalidArgument(
                context: "\(op) \(whole.shape)", reason: "needs a [B, S, …] tensor of whole-byte elements, got \(whole.dtype)")
        }
        batch = whole.shape[0]
        tokens = whole.shape[1]
        trailing = Array(whole.shape.dropFirst(2))
        dtype = whole.dtype
        tokenBytes = whole.dtype.byteCount(forElements: trailing.reduce(1, *))
    }

    /// Throws unless `part` is `[batch, Sᵢ] + trailing` in the same dtype.
    func check(_ part: DeviceTensor, _ name: String, _ op: String) throws {
        try OperandCheck.dtype(part, dtype, op, name)
        guard part.shape.count == trailing.count + 2, part.shape[0] == batch, Array(part.shape.dropFirst(2)) == trailing else {
            throw NunchakuError.shapeMismatch(
                context: "\(op) \(name)", expected: [batch, part.shape.count > 1 ? part.shape[1] : 0] + trailing, actual: part.shape)
        }
    }
}
