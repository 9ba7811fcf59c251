import CPUBackend
import CUDABackend
import NunchakuCore

/// RoPE tables on the GPU: float32 `[S, d]` cos and sin for the joint `[text; image]` sequence.
struct FluxCUDARotary: Sendable {
    let cos: DeviceTensor
    let sin: DeviceTensor

    init(_ table: RotaryTable, context: CUDAContext) throws {
        cos = try DeviceTensor(uploading: table.cosTensor, context: context)
        sin = try DeviceTensor(uploading: table.sinTensor, context: context)
    }

    init(cos: DeviceTensor, sin: DeviceTensor) {
        self.cos = cos
        self.sin = sin
    }
}

/// A per-head RMSNorm weight on the GPU (float32 `[d]`) with the bound of every element of the heads it normalizes
/// and RoPE rotates (`AttentionFP8Launch.headBound`), known at load: fp8 attention's fixed q and k scales.
struct FluxCUDANormWeight: Sendable {
    let weight: DeviceTensor
    let bound: Float

    /// Uploads `weight` (float32 `[d]`).
    init(_ weight: Tensor, context: CUDAContext) throws {
        self.weight = try DeviceTensor(uploading: weight, context: context)
        bound = AttentionFP8Launch.headBound(normWeight: weight.floats())
    }
}

/// The fused `q ‖ k ‖ v` projection of one stream with its per-head RMSNorm weights.
struct FluxCUDAQKV: Sendable {
    let projection: FluxCUDALinear
    let queryNorm: FluxCUDANormWeight
    let keyNorm: FluxCUDANormWeight
    let heads: Int

    /// Joint heads of `tokens` tokens in `x`'s dtype, for the streams that will `write` into them.
    func jointHeads(batch: Int, tokens: Int, like x: DeviceTensor, _ ops: FluxCUDAOps) throws -> FluxCUDAJointHeads {
        FluxCUDAJointHeads(batch: batch, tokens: tokens, heads: heads, headDim: queryNorm.weight.shape[0], dtype: x.dtype)
    }

    /// Projects `[B, S, D]` tokens (16-bit values, or activations quantized for `projection`'s fast W4A4 activation
    /// pass) for rows `tokenOffset ..< tokenOffset + S` of `joint`; `FluxCUDAAttention.attend` writes their heads
    /// (`RMSNorm(q)·w_q` and `RMSNorm(k)·w_k` with RoPE at their joint positions, and v) in the format of its
    /// precision, in one pass per stream.
    func write(_ x: W4A4FastInput, into joint: FluxCUDAJointHeads, tokenOffset: Int, rotary: FluxCUDARotary,
               _ ops: FluxCUDAOps) throws {
        write(projection: try ops.linear(projection, x), into: joint, tokenOffset: tokenOffset, rotary: rotary)
    }

    /// `write` of a projection `[B, S, 3D]` this layer's `projection` already made (a shared activation pass).
    func write(projection: DeviceTensor, into joint: FluxCUDAJointHeads, tokenOffset: Int, rotary: FluxCUDARotary) {
        joint.streams.append(.init(projection: projection, layer: self, tokenOffset: tokenOffset, rotary: rotary))
    }
}

/// The input of one joint attention: the streams' projections, recorded by `FluxCUDAQKV.write`. Their heads are
/// written once `FluxCUDAAttention.attend` knows the precision: 16-bit q, k, v, or (fp8) the attention kernel's e4m3
/// operands straight from the projections, with no 16-bit q and k in between.
final class FluxCUDAJointHeads {
    struct Stream {
        let projection: DeviceTensor
        let layer: FluxCUDAQKV
        let tokenOffset: Int
        let rotary: FluxCUDARotary
    }

    let batch: Int
    let tokens: Int
    let heads: Int
    let headDim: Int
    let dtype: DType
    fileprivate var streams: [Stream] = []

    init(batch: Int, tokens: Int, heads: Int, headDim: Int, dtype: DType) {
        (self.batch, self.tokens, self.heads, self.headDim, self.dtype) = (batch, tokens, heads, headDim, dtype)
    }
}

/// A layer that runs after the attention, and the stream its forward runs on: its weight expansion may go beside the
/// attention kernel (`FluxCUDAAttention.expandBeside`).
struct FluxCUDAAttentionSuccessor {
    let layer: FluxCUDALinear
    let stream: CUDAStream
}

enum FluxCUDAAttention {
    /// Attention over the whole joint sequence of normalized, rotated heads at `precision`, heads merged to
    /// `[B, S, D]`. `.bf16`: 16-bit heads, then `attention`. `.fp8`: `AttentionFP8Heads` with the q and k scales of the
    /// streams' larger norm bounds, the v codes, then `attentionFP8`. `successors`' weights are expanded beside the
    /// attention kernel (`expandBeside`).
    static func attend(_ joint: FluxCUDAJointHeads, precision: AttentionPrecision, successors: [FluxCUDAAttentionSuccessor],
                       _ ops: FluxCUDAOps) throws -> DeviceTensor {
        let context = ops.context
        let output: DeviceTensor
        switch precision {
        case .bf16:
            let heads = try AttentionHeads(batch: joint.batch, tokens: joint.tokens, heads: joint.heads, headDim: joint.headDim,
                                           dtype: joint.dtype, context: context)
            for stream in joint.streams {
                try context.writeHeads(of: stream.projection, queryNorm: stream.layer.queryNorm.weight, keyNorm: stream.layer.keyNorm.weight,
                                       cos: stream.rotary.cos, sin: stream.rotary.sin, into: heads, tokenOffset: stream.tokenOffset)
            }
            try expandBeside(successors, ops)
            output = try context.attention(heads, precision: .bf16)
        case .fp8:
            let heads = try fp8Heads(joint, ops)
            output = try DeviceTensor(shape: [joint.batch, joint.tokens, joint.heads, joint.headDim], dtype: joint.dtype, context: context)
            try expandBeside(successors, ops)
            try context.attentionFP8(heads.operands, into: output)
        }
        let shape = output.shape
        return try output.reshaped([shape[0], shape[1], shape[2] * shape[3]])
    }

    /// The fp8 attention over the joint sequence writing the codes of the fast out-projections (`codes`' layers;
    /// rows before `splitToken` for its first table, the rest for its last): `[B, S, H·128]` codes and `[B·S]` scales.
    /// `successors`' weights are expanded beside the attention kernel (`expandBeside`).
    static func attend(_ joint: FluxCUDAJointHeads, codes: FluxCUDAAttentionCodes, splitToken: Int,
                       successors: [FluxCUDAAttentionSuccessor], _ ops: FluxCUDAOps) throws -> W4A4FastActivations {
        let heads = try fp8Heads(joint, ops)
        let width = joint.heads * joint.headDim
        let result = (codes: try DeviceTensor(shape: [joint.batch, joint.tokens, width], dtype: .u8, context: ops.context),
                      scales: try DeviceTensor(shape: [joint.batch * joint.tokens], dtype: .f32, context: ops.context))
        try expandBeside(successors, ops)
        try ops.context.attentionFP8(heads.operands, codes: result, tables: codes.tables, splitToken: splitToken)
        return result
    }

    /// Queues the weight expansions of the fast layers among `successors` on their lanes' low-priority side streams,
    /// after everything queued so far, where their engine `expandsBesideAttention`; called right before the
    /// attention kernel, whose persistent grid leaves multiprocessors idle in its last round of units.
    private static func expandBeside(_ successors: [FluxCUDAAttentionSuccessor], _ ops: FluxCUDAOps) throws {
        let origin = ops.context.currentStream
        for successor in successors {
            guard let layer = successor.layer.fastLayer, layer.engine.expandsBesideAttention else { continue }
            try layer.engine.prefetchWeights(of: layer, forwardOn: successor.stream, after: origin)
        }
    }

    /// The float8 operands of the joint heads: q and k scales from the streams' larger norm bounds, the v codes.
    private static func fp8Heads(_ joint: FluxCUDAJointHeads, _ ops: FluxCUDAOps) throws -> AttentionFP8Heads {
        let context = ops.context
        let heads = try AttentionFP8Heads(
            batch: joint.batch, tokens: joint.tokens, heads: joint.heads, dtype: joint.dtype,
            queryBound: joint.streams.map(\.layer.queryNorm.bound).max() ?? 0,
            keyBound: joint.streams.map(\.layer.keyNorm.bound).max() ?? 0, context: context)
        for stream in joint.streams {
            try context.writeHeads(of: stream.projection, queryNorm: stream.layer.queryNorm.weight, keyNorm: stream.layer.keyNorm.weight,
                                   cos: stream.rotary.cos, sin: stream.rotary.sin, into: heads, tokenOffset: stream.tokenOffset)
        }
        try context.writeValueCodes(of: heads)
        return heads
    }
}

/// The fast W4A4 out-projections of an attention that can read its fp8 codes output (`AttentionFP8CodesTable` per
/// layer, made at load): a double block's text and image out-projections, or a single block's attention projection.
struct FluxCUDAAttentionCodes: Sendable {
    /// The layers, in table order.
    let layers: [FluxCUDALinear]
    let tables: [AttentionFP8CodesTable]

    /// The tables of `layers` (whose input is `heads` heads of 128), or nil unless each runs as a fast W4A4 layer
    /// with K = depth = heads · 128 and an unshifted input.
    init?(layers: [FluxCUDALinear], heads: Int) throws {
        let fast = layers.compactMap(\.fastLayer)
        let width = heads * AttentionFP8Launch.headDim
        guard fast.count == layers.count,
              fast.allSatisfy({ $0.inputPass.inFeatures == width && $0.inputPass.depth == width && !$0.inputPass.shifted })
        else { return nil }
        self.layers = layers
        tables = try fast.map { try AttentionFP8CodesTable(layer: $0, heads: heads) }
    }

    /// Whether the attention writes the codes now: fp8 attention, the engine's `quantizesInAttention` on, and every
    /// layer still running as its fast layer (no LoRA branch).
    func isUsable(_ precision: AttentionPrecision) -> Bool {
        guard precision == .fp8, let engine = tables.first?.pass.engine, engine.quantizesInAttention else { return false }
        return layers.allSatisfy { $0.fastLayer != nil }
    }
}
