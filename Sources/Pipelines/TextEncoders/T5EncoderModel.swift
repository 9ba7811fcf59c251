import CPUBackend
import Models
import NunchakuCore

/// transformers' `T5EncoderModel` on the CPU for T5 v1.1 (FLUX's `text_encoder_2`, T5-XXL): the shared token
/// embedding, blocks of RMS-normed (T5LayerNorm: no mean, no bias) unscaled self-attention with a relative position
/// bias computed by the first block and reused by all, gated-GELU (tanh) feed-forwards, and a final T5LayerNorm.
///
/// Computes in f32 or bf16: weights are rounded to `dtype` at load, every op rounds its output to `dtype`.
public struct T5EncoderModel: Sendable {
    public let config: T5EncoderConfig
    /// The compute dtype (f32 or bf16).
    public let dtype: DType
    private let embedding: TextEncoderEmbedding
    /// `[numBuckets, numHeads]`, from `encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight`.
    private let relativeBiasTable: [Float]
    private let blocks: [T5EncoderBlock]
    private let finalNorm: TextEncoderNormParameters

    /// Loads a transformers T5 encoder folder (`config.json` + safetensors, sharded or not).
    public init(folder: String, dtype: DType = .f32) throws {
        let files = try TextEncoderFiles(folder: folder)
        let config = try T5EncoderConfig.decode(files.configData, source: files.configPath)
        try self.init(config: config, weights: files.weights, source: folder, dtype: dtype)
    }

    /// Builds the model from `weights` named as transformers saves them (`shared.weight`, `encoder.block.{i}.…`,
    /// `encoder.final_layer_norm.weight`). A tied copy `encoder.embed_tokens.weight` is accepted beside
    /// `shared.weight` (and used when it is the only embedding).
    /// - Throws: `WeightLoadingError` listing every missing, unexpected or mis-shaped tensor; config errors.
    public init(config: T5EncoderConfig, weights: any TensorProvider, source: String, dtype: DType = .f32) throws {
        try config.validate(source: source)
        guard dtype == .f32 || dtype == .bf16 else {
            throw NunchakuError.dtypeMismatch(context: "\(source) compute dtype", expected: [.f32, .bf16], actual: dtype)
        }
        let reader = WeightReader(weights, source: source)
        let tied = "encoder.embed_tokens.weight"
        let embeddingName = !weights.contains("shared.weight") && weights.contains(tied) ? tied : "shared.weight"
        embedding = try TextEncoderEmbedding(embeddingName, rows: config.vocabSize, width: config.dModel, reader: reader, dtype: dtype)
        if embeddingName != tied, reader.contains(tied) {
            _ = reader.tensor(tied, shape: [config.vocabSize, config.dModel], dtypes: parameterDTypes)
        }
        relativeBiasTable = try parameterValues(
            reader.tensor("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                          shape: [config.relativeAttentionNumBuckets, config.numHeads], dtypes: parameterDTypes),
            dtype, "relative_attention_bias")
        blocks = try (0..<config.numLayers).map {
            try T5EncoderBlock(prefix: "encoder.block.\($0)", config: config, reader: reader, dtype: dtype)
        }
        finalNorm = try TextEncoderNormParameters(
            "encoder.final_layer_norm", width: config.dModel, hasBias: false, reader: reader, dtype: dtype)
        try reader.finish()
        self.config = config
        self.dtype = dtype
    }

    /// The last hidden state `[B, S, d_model]` for a batch of token-id rows of one length, computed with no attention
    /// mask (padding tokens are attended), as FluxPipeline calls the encoder.
    public func encode(tokenIDs: [[Int]]) throws -> Tensor {
        let (batch, tokens) = try tokenBatchShape(tokenIDs, context: "T5EncoderModel")
        var hidden = Tensor.rounding(
            try tokenIDs.flatMap { try embedding.lookup($0) }, shape: [batch, tokens, config.dModel], to: dtype)
        let bias = T5RelativePosition.bias(
            table: relativeBiasTable, heads: config.numHeads, tokens: tokens,
            numBuckets: config.relativeAttentionNumBuckets, maxDistance: config.relativeAttentionMaxDistance)
        for block in blocks { hidden = try block(hidden, positionBias: bias) }
        return try CPUOps.rmsNorm(hidden, weight: finalNorm.weight, eps: config.layerNormEpsilon)
    }
}

/// One T5 encoder block: `x += o(softmax(q·kᵀ + bias)·v)` on `T5LayerNorm(x)`, then
/// `x += wo(gelu_tanh(wi_0 h) ⊙ wi_1 h)` on `h = T5LayerNorm(x)`.
struct T5EncoderBlock: Sendable {
    let name: String
    let heads: Int
    let eps: Float
    let attentionNorm: TextEncoderNormParameters
    let query: TextEncoderLinear
    let key: TextEncoderLinear
    let value: TextEncoderLinear
    let output: TextEncoderLinear
    let feedForwardNorm: TextEncoderNormParameters
    let gate: TextEncoderLinear
    let up: TextEncoderLinear
    let down: TextEncoderLinear

    init(prefix: String, config: T5EncoderConfig, reader: WeightReader, dtype: DType) throws {
        func linear(_ name: String, _ inputs: Int, _ outputs: Int) throws -> TextEncoderLinear {
            try TextEncoderLinear("\(prefix).\(name)", inFeatures: inputs, outFeatures: outputs, hasBias: false, reader: reader, dtype: dtype)
        }
        let (model, inner) = (config.dModel, config.innerDim)
        name = prefix
        heads = config.numHeads
        eps = config.layerNormEpsilon
        attentionNorm = try TextEncoderNormParameters("\(prefix).layer.0.layer_norm", width: model, hasBias: false, reader: reader, dtype: dtype)
        query = try linear("layer.0.SelfAttention.q", model, inner)
        key = try linear("layer.0.SelfAttention.k", model, inner)
        value = try linear("layer.0.SelfAttention.v", model, inner)
        output = try linear("layer.0.SelfAttention.o", inner, model)
        feedForwardNorm = try TextEncoderNormParameters("\(prefix).layer.1.layer_norm", width: model, hasBias: false, reader: reader, dtype: dtype)
        gate = try linear("layer.1.DenseReluDense.wi_0", model, config.dFf)
        up = try linear("layer.1.DenseReluDense.wi_1", model, config.dFf)
        down = try linear("layer.1.DenseReluDense.wo", config.dFf, model)
    }

    func callAsFunction(_ x: Tensor, positionBias: [Float]) throws -> Tensor {
        let normed = try CPUOps.rmsNorm(x, weight: attentionNorm.weight, eps: eps)
        let attended = try TextEncoderAttention.attend(
            query: query(normed), key: key(normed), value: value(normed), heads: heads,
            scale: 1, bias: positionBias, causal: false, context: "\(name).layer.0.SelfAttention")
        let afterAttention = try TextEncoderElementwise.add(x, output(attended), context: "\(name) attention residual")
        let normed2 = try CPUOps.rmsNorm(afterAttention, weight: feedForwardNorm.weight, eps: eps)
        let gated = try TextEncoderElementwise.multiply(
            CPUOps.geluTanh(gate(normed2)), up(normed2), context: "\(name).layer.1.DenseReluDense")
        return try TextEncoderElementwise.add(afterAttention, down(gated), context: "\(name) feed-forward residual")
    }
}
