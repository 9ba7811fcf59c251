import CUDABackend
import Models
import NunchakuCore

/// transformers' `T5EncoderModel` (T5 v1.1, FLUX's T5-XXL) on an NVIDIA GPU in bf16 with float32 accumulation: the
/// same graph, names and rounding points as the CPU `T5EncoderModel` (its reference). q, k, v are one fused GEMM and
/// so are `wi_0 ‖ wi_1`; the attention is `encoderAttention` with the relative position bias as a float32
/// `[H, 2S − 1]` table (the bias depends only on the distance); the shared embedding stays on the host.
///
/// Nunchaku's 4-bit T5 loads through the same initializer: linears stored as `TinyChatW4Layer`s stay 4-bit on the
/// GPU (see `CUDAEncoderLinear`).
public final class CUDAT5EncoderModel: T5TextEncoding, @unchecked Sendable {
    public let config: T5EncoderConfig
    public let context: CUDAContext
    private let gemm: CUDAGEMM
    private let embedding: TextEncoderEmbedding
    /// `[numBuckets, numHeads]`, rounded to bf16.
    private let relativeBiasTable: [Float]
    private let blocks: [Block]
    private let finalNorm: CUDAEncoderRMSNorm

    struct Block {
        let attentionNorm: CUDAEncoderRMSNorm
        let qkv: CUDAEncoderLinear
        let output: CUDAEncoderLinear
        let feedForwardNorm: CUDAEncoderRMSNorm
        let gateUp: CUDAEncoderLinear
        let down: CUDAEncoderLinear
    }

    /// Loads a transformers T5 encoder folder (`config.json` + safetensors, sharded or not).
    public convenience init(folder: String, context: CUDAContext) throws {
        let files = try TextEncoderFiles(folder: folder)
        try self.init(config: T5EncoderConfig.decode(files.configData, source: files.configPath), weights: files.weights,
                      source: folder, context: context)
    }

    /// Loads Nunchaku's 4-bit T5 (`awq-int4-flux.1-t5xxl.safetensors`); its linears stay 4-bit on the GPU.
    public convenience init(awq checkpoint: T5AWQCheckpoint, context: CUDAContext) throws {
        try self.init(config: checkpoint.config, weights: checkpoint.weights, source: checkpoint.path, context: context)
    }

    /// Builds the model from transformers-named weights, strictly (one `WeightLoadingError` lists every problem).
    /// A tied `encoder.embed_tokens.weight` is accepted beside `shared.weight` or alone, as on the CPU.
    public init(config: T5EncoderConfig, weights: any TensorProvider, source: String, context: CUDAContext,
                gemm: CUDAGEMM? = nil) throws {
        try config.validate(source: source)
        guard config.dModel % 8 == 0, config.dFf % 8 == 0, config.dKv % 2 == 0,
              config.dKv <= CUDAContext.encoderAttentionMaxHeadDim else {
            throw NunchakuError.unsupported(
                context: source, reason: "d_model \(config.dModel) and d_ff \(config.dFf) must be multiples of 8 and d_kv \(config.dKv) even and at most \(CUDAContext.encoderAttentionMaxHeadDim) on the GPU")
        }
        let reader = WeightReader(weights, source: source)
        let tied = "encoder.embed_tokens.weight"
        let embeddingName = !weights.contains("shared.weight") && weights.contains(tied) ? tied : "shared.weight"
        embedding = try TextEncoderEmbedding(embeddingName, rows: config.vocabSize, width: config.dModel, reader: reader, dtype: .bf16)
        if embeddingName != tied, reader.contains(tied) {
            _ = reader.tensor(tied, shape: [config.vocabSize, config.dModel], dtypes: parameterDTypes)
        }
        relativeBiasTable = try parameterValues(
            reader.tensor("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                          shape: [config.relativeAttentionNumBuckets, config.numHeads], dtypes: parameterDTypes),
            .bf16, "relative_attention_bias")
        let (model, inner, eps) = (config.dModel, config.innerDim, config.layerNormEpsilon)
        blocks = try (0..<config.numLayers).map { index in
            let name = "encoder.block.\(index).layer"
            func linear(_ parts: [String], _ outputs: [Int], _ inputs: Int) throws -> CUDAEncoderLinear {
                try CUDAEncoderLinear(parts.map { "\(name).\($0)" }, outputs: outputs, inFeatures: inputs, hasBias: false,
                                      weights: weights, reader: reader, context: context)
            }
            return Block(
                attentionNorm: try CUDAEncoderRMSNorm("\(name).0.layer_norm", width: model, eps: eps, reader: reader, context: context),
                qkv: try linear(["0.SelfAttention.q", "0.SelfAttention.k", "0.SelfAttention.v"], [inner, inner, inner], model),
                output: try linear(["0.SelfAttention.o"], [model], inner),
                feedForwardNorm: try CUDAEncoderRMSNorm("\(name).1.layer_norm", width: model, eps: eps, reader: reader, context: context),
                gateUp: try linear(["1.DenseReluDense.wi_0", "1.DenseReluDense.wi_1"], [config.dFf, config.dFf], model),
                down: try linear(["1.DenseReluDense.wo"], [model], config.dFf))
        }
        finalNorm = try CUDAEncoderRMSNorm("encoder.final_layer_norm", width: model, eps: eps, reader: reader, context: context)
        try reader.finish()
        self.config = config
        self.context = context
        self.gemm = gemm ?? CUDAGEMM(context: context)
    }

    /// The last hidden state `[B, S, d_model]` (bf16, host) for token-id rows of one length, with no attention mask
    /// (padding is attended), as FluxPipeline calls the encoder.
    public func encode(tokenIDs: [[Int]]) throws -> Tensor {
        let (batch, tokens) = try tokenBatchShape(tokenIDs, context: "CUDAT5EncoderModel")
        return try forward(tokenIDs, batch: batch, tokens: tokens).download()
    }

    /// The final hidden states on the GPU, `[B, S, d_model]` bf16.
    func forward(_ tokenIDs: [[Int]], batch: Int, tokens: Int) throws -> DeviceTensor {
        let embedded = try tokenIDs.flatMap { try embedding.lookup($0) }
        var x = try uploadEmbeddings(embedded, batch: batch, tokens: tokens, width: config.dModel, context: context)
        let bias = try DeviceTensor(uploading: positionBias(tokens: tokens), context: context)
        let layout = FusedQKVLayout(heads: config.numHeads, headDim: config.dKv)
        for block in blocks {
            let qkv = try block.qkv(try block.attentionNorm(x, context: context), gemm: gemm)
            let attended = try DeviceTensor(shape: [batch, tokens, config.innerDim], dtype: .bf16, context: context)
            try context.encoderAttention(qkv, layout: layout, scale: 1, positionBias: bias, into: attended)
            try context.add(x, try block.output(attended, gemm: gemm), into: x)
            let gateUp = try block.gateUp(try block.feedForwardNorm(x, context: context), gemm: gemm)
            let gated = try DeviceTensor(shape: [batch, tokens, config.dFf], dtype: .bf16, context: context)
            try context.gatedGELU(gateUp, into: gated)
            try context.add(x, try block.down(gated, gemm: gemm), into: x)
        }
        x = try finalNorm(x, context: context)
        return x
    }

    /// The relative position bias by distance for `tokens` tokens (`T5RelativePosition.biasByDistance`).
    func positionBias(tokens: Int) -> Tensor {
        T5RelativePosition.biasByDistance(
            table: relativeBiasTable, heads: config.numHeads, tokens: tokens,
            numBuckets: config.relativeAttentionNumBuckets, maxDistance: config.relativeAttentionMaxDistance)
    }

    /// Bytes of weights on the GPU (4-bit layers count their packed size).
    public var deviceWeightBytes: Int {
        blocks.reduce(0) { $0 + $1.qkv.deviceBytes + $1.output.deviceBytes + $1.gateUp.deviceBytes + $1.down.deviceBytes }
    }
}

extension T5RelativePosition {
    /// The bias by distance, float32 `[H, 2S − 1]`: entry (h, r + S − 1) is `table[bucket(r)][h]` for key − query = r,
    /// so entry (h, j − i + S − 1) equals entry (h, i, j) of `bias(table:heads:tokens:numBuckets:maxDistance:)`
    /// (the form `encoderAttention` takes: the bias depends on the distance only).
    static func biasByDistance(table: [Float], heads: Int, tokens: Int, numBuckets: Int, maxDistance: Int) -> Tensor {
        let span = 2 * tokens - 1
        var values = [Float](repeating: 0, count: heads * span)
        for offset in 0..<span {
            let row = bucket(offset - (tokens - 1), numBuckets: numBuckets, maxDistance: maxDistance) * heads
            for head in 0..<heads { values[head * span + offset] = table[row + head] }
        }
        return Tensor(values, shape: [heads, span])
    }
}
