import NunchakuCore

/// What the float8 attention needs to write the input of a fast W4A4 layer that reads its output
/// (`CUDAContext.attentionFP8(_:keyMask:codes:tables:splitToken:)`): the layer's smoothing and, per head, the factor
/// of its bound. Made once per layer, when the model loads (a forward must not upload: it may be captured).
public struct AttentionFP8CodesTable: Sendable {
    /// The layer the codes are for.
    public let pass: W4A4FastInputPass
    /// f32 [H]: `AttentionFP8CodesReference.headFactors` of the layer's `1 / smooth`.
    public let headFactors: DeviceTensor

    /// The table of `layer`, whose input is the attention output of `heads` heads of 128.
    /// - Throws: `NunchakuError.unsupported` naming the layer when its K is not `heads · 128` or it quantizes a
    ///   shifted input; upload errors.
    public init(layer: CUDASVDQW4A4FastLinear, heads: Int, stream: CUDAStream? = nil) throws {
        let pass = layer.inputPass
        let width = heads * AttentionFP8Launch.headDim
        guard pass.inFeatures == width, pass.depth == width, !pass.shifted else {
            throw NunchakuError.unsupported(
                context: "\(layer.name) input from the fp8 attention",
                reason: "needs an unshifted layer with K = depth = \(heads) · \(AttentionFP8Launch.headDim); it has K = \(pass.inFeatures), depth \(pass.depth)\(pass.shifted ? ", shifted" : "")")
        }
        self.pass = pass
        let factors = AttentionFP8CodesReference.headFactors(layer.parameters.inverseSmooth)
        headFactors = try DeviceTensor(uploading: Tensor(factors, shape: [heads]), context: layer.engine.context,
                                       stream: stream ?? layer.engine.context.currentStream)
    }
}

/// The CPU reference of the float8 attention's codes output (attention_wgmma.cu, `OutputCodes`): the fast W4A4
/// activation pass of the layer reading the output (`W4A4FastReference.quantize`), with the row's amax replaced by a
/// bound known before the rows exist. An output row is a weighted mean of v rows, so with the e4m3-rounded weights
/// (at most 1/16 each, plus the subnormal ones) and the 16-bit rounding, |o| < 1.09 · max |v|; with the smoothing
/// |t| = |o · inverseSmooth| ≤ max_h max|v_h| · headFactors[h], headFactors = 9/8 · max |inverseSmooth| over the head.
public enum AttentionFP8CodesReference {
    /// The bound's margin over max |v|.
    public static let margin = 1.125

    /// f32 [H]: `Float(9/8 · max |inverseSmooth[c]|)` over each head's 128 channels `c`.
    public static func headFactors(_ inverseSmooth: [Float]) -> [Float] {
        let d = AttentionFP8Launch.headDim
        return stride(from: 0, to: inverseSmooth.count, by: d).map { start in
            Float(margin * Double(inverseSmooth[start ..< min(start + d, inverseSmooth.count)].map(abs).max() ?? 0))
        }
    }

    /// The amax of one sample's rows that feed a table: `448 · max_h vScale[h] · headFactors[h]` in fp32.
    public static func amax(valueScales: ArraySlice<Float>, headFactors: [Float]) -> Float {
        448 * zip(valueScales, headFactors).reduce(Float(0)) { max($0, $1.0 * $1.1) }
    }

    /// Codes [B·S, H·128] and scales [B·S] of the 16-bit output rows `output` ([B, S, H·128], values widened) as the
    /// codes kernel writes them: per row, `amax` of its sample and table (rows before `splitToken` table 0, the rest
    /// the last table), scale amax / 448, codes e4m3(o · inverseSmooth · (448 / amax)) (nearest-even, saturating).
    /// `valueScales` are the attention's v scales [B·H]; each table `(inverseSmooth [H·128], headFactors [H])`.
    public static func quantize(_ output: [Float], valueScales: [Float], batch: Int, tokens: Int, heads: Int,
                                tables: [(inverseSmooth: [Float], headFactors: [Float])], splitToken: Int) -> (codes: [UInt8], scales: [Float]) {
        let width = heads * AttentionFP8Launch.headDim
        var codes = [UInt8](repeating: 0, count: batch * tokens * width)
        var scales = [Float](repeating: 0, count: batch * tokens)
        for sample in 0..<batch {
            let sampleScales = valueScales[(sample * heads)..<((sample + 1) * heads)]
            let amaxes = tables.map { amax(valueScales: sampleScales, headFactors: $0.headFactors) }
            for token in 0..<tokens {
                let table = token < splitToken ? 0 : tables.count - 1
                let amax = amaxes[table]
                let factor: Float = amax > 0 ? 448 / amax : 0
                let row = sample * tokens + token
                scales[row] = amax / 448
                for column in 0..<width {
                    let t = output[row * width + column] * tables[table].inverseSmooth[column]
                    codes[row * width + column] = FloatFormats.e4m3fnBits(t * factor, saturating: true)
                }
            }
        }
        return (codes, scales)
    }
}

extension CUDAContext {
    /// `attentionFP8` writing, instead of 16-bit rows, the input of the fast W4A4 layer(s) that read them: codes
    /// [B, S, H·128] (or [B·S, H·128]) and per-token scales [B·S] for `tables[0]`'s layer (rows before `splitToken`)
    /// and the last table's (the others); `AttentionFP8CodesReference` has the numerics. The values are rounded to
    /// the layers' activation dtype first, as the 16-bit output would be, so the codes are those the layer's own pass
    /// would make from that output but for the bound in place of each row's amax.
    /// - Throws: `NunchakuError` naming the operand with a wrong shape or dtype, or when the tables (one or two) differ
    ///   in dtype or do not fit `H · 128` columns; what `attentionFP8` throws.
    public func attentionFP8(_ operands: AttentionFP8Operands, keyMask: DeviceTensor? = nil, codes: W4A4FastActivations,
                             tables: [AttentionFP8CodesTable], splitToken: Int = 0, stream: CUDAStream? = nil) throws {
        let op = "attentionFP8 codes"
        let (batch, tokens, heads) = operands.heads
        let width = heads * AttentionFP8Launch.headDim
        guard let first = tables.first, let last = tables.last, tables.count <= 2 else {
            throw NunchakuError.invalidArgument(context: op, reason: "needs one or two tables, got \(tables.count)")
        }
        for table in tables {
            guard table.pass.type == first.pass.type, table.pass.inFeatures == width, table.headFactors.shape == [heads] else {
                throw NunchakuError.invalidArgument(
                    context: op, reason: "a table for K = \(table.pass.inFeatures) \(table.pass.type) with \(table.headFactors.shape) head factors "
                        + "does not fit \(heads) heads of \(first.pass.type)")
            }
        }
        _ = try first.pass.matrix(codes, rows: batch * tokens, op)
        try launchFP8(operands, keyMask: keyMask, outputDType: first.pass.type.dtype, variant: "codes_", output: [.pointer(0)],
                      codes: [codes.codes.argument, codes.scales.argument, first.pass.inverseSmooth.argument, last.pass.inverseSmooth.argument,
                              first.headFactors.argument, last.headFactors.argument, .int32(Int32(max(0, min(splitToken, tokens))))],
                      extraSharedBytes: AttentionFP8Launch.codesSharedBytes(width: width, batch: batch), stream: stream ?? codes.codes.buffer.workStream)
    }
}

extension AttentionFP8Launch {
    /// The codes kernel's shared memory after its plan (attention_wgmma.cu, `CodesShared`): both tables' smoothing
    /// factors (2 · width floats), the per-sample factors and scales (4 · batch floats), 16 bytes of alignment slack
    /// and a staging tile of 16 rows × 144 bytes for each of the 8 consumer warps.
    static func codesSharedBytes(width: Int, batch: Int) -> Int {
        (2 * width + 4 * batch) * MemoryLayout<Float>.size + 16 + 8 * 16 * 144
    }
}
