import CPUBackend
import Models
import NunchakuCore

/// The outputs of `CLIPTextModel.encode`.
public struct CLIPTextOutput: Sendable {
    /// The final-layer-normed hidden states, `[B, S, hidden]`.
    public let lastHiddenState: Tensor
    /// The hidden state at each row's EOS position, `[B, hidden]`: FLUX's `pooled_prompt_embeds`.
    public let pooled: Tensor
}

/// transformers' `CLIPTextModel` on the CPU (FLUX's `text_encoder`, CLIP-L): token + position embeddings, pre-LN
/// transformer layers with a causal mask and quick_gelu MLPs, a final LayerNorm, and the pooled output taken at the
/// EOS position. No text projection (that is `CLIPTextModelWithProjection`).
///
/// Computes in f32 or bf16: weights are rounded to `dtype` at load, every op rounds its output to `dtype`.
public struct CLIPTextModel: Sendable {
    public let config: CLIPTextConfig
    /// The compute dtype (f32 or bf16).
    public let dtype: DType
    private let tokenEmbedding: TextEncoderEmbedding
    private let positionEmbedding: TextEncoderEmbedding
    private let layers: [CLIPEncoderLayer]
    private let finalNorm: TextEncoderNormParameters

    /// Loads a transformers CLIP text folder (`config.json` + safetensors).
    public init(folder: String, dtype: DType = .f32) throws {
        let files = try TextEncoderFiles(folder: folder)
        let config = try CLIPTextConfig.decode(files.configData, source: files.configPath)
        try self.init(config: config, weights: files.weights, source: folder, dtype: dtype)
    }

    /// Builds the model from `weights`, named as transformers 5 saves them (`embeddings.…`, `encoder.layers.{i}.…`,
    /// `final_layer_norm.…`) or as v4 checkpoints on the hub do (the same under `text_model.`).
    /// - Throws: `WeightLoadingError` listing every missing, unexpected or mis-shaped tensor; config errors.
    public init(config: CLIPTextConfig, weights: any TensorProvider, source: String, dtype: DType = .f32) throws {
        try config.validate(source: source)
        guard dtype == .f32 || dtype == .bf16 else {
            throw NunchakuError.dtypeMismatch(context: "\(source) compute dtype", expected: [.f32, .bf16], actual: dtype)
        }
        let prefix = weights.contains("text_model.embeddings.token_embedding.weight") ? "text_model." : ""
        let reader = WeightReader(weights, source: source)
        let width = config.hiddenSize
        tokenEmbedding = try TextEncoderEmbedding(
            "\(prefix)embeddings.token_embedding.weight", rows: config.vocabSize, width: width, reader: reader, dtype: dtype)
        positionEmbedding = try TextEncoderEmbedding(
            "\(prefix)embeddings.position_embedding.weight", rows: config.maxPositionEmbeddings, width: width,
            reader: reader, dtype: dtype)
        Self.checkPositionIDsBuffer(prefix: prefix, config: config, reader: reader)
        layers = try (0..<config.numHiddenLayers).map {
            try CLIPEncoderLayer(prefix: "\(prefix)encoder.layers.\($0)", config: config, reader: reader, dtype: dtype)
        }
        finalNorm = try TextEncoderNormParameters(
            "\(prefix)final_layer_norm", width: width, hasBias: true, reader: reader, dtype: dtype)
        try reader.finish()
        self.config = config
        self.dtype = dtype
    }

    /// Runs the model on a batch of token-id rows of one length (at most `max_position_embeddings`), with no
    /// attention mask beyond the causal one, as FluxPipeline does.
    public func encode(tokenIDs: [[Int]]) throws -> CLIPTextOutput {
        let context = "CLIPTextModel"
        let (batch, tokens) = try tokenBatchShape(tokenIDs, context: context)
        guard tokens <= config.maxPositionEmbeddings else {
            throw NunchakuError.invalidArgument(
                context: context, reason: "\(tokens) tokens exceed max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        let width = config.hiddenSize
        let positions = try positionEmbedding.lookup(Array(0..<tokens))
        var embedded = [Float]()
        for ids in tokenIDs {
            let rows = try tokenEmbedding.lookup(ids)
            embedded.append(contentsOf: zip(rows, positions).map { $0 + $1 })
        }
        var hidden = Tensor.rounding(embedded, shape: [batch, tokens, width], to: dtype)
        for layer in layers { hidden = try layer(hidden) }
        let last = try CPUOps.layerNorm(hidden, weight: finalNorm.weight, bias: finalNorm.bias, eps: config.layerNormEps)

        let values = try last.floatValues(context: context)
        var pooled = [Float]()
        for (row, ids) in tokenIDs.enumerated() {
            let start = (row * tokens + poolingPosition(ids)) * width
            pooled.append(contentsOf: values[start..<(start + width)])
        }
        return CLIPTextOutput(lastHiddenState: last, pooled: Tensor.rounding(pooled, shape: [batch, width], to: dtype))
    }

    /// transformers' rule: with the legacy `eos_token_id == 2`, the position of the largest id (its first
    /// occurrence); otherwise the first position holding `eos_token_id`, or 0 when the row has none (argmax of an
    /// all-false row).
    public func poolingPosition(_ ids: [Int]) -> Int {
        Self.poolingPosition(ids, eosTokenId: config.eosTokenId)
    }

    /// The pooling rule of `poolingPosition(_:)` for a config's `eos_token_id` (shared with the GPU model).
    public static func poolingPosition(_ ids: [Int], eosTokenId: Int) -> Int {
        if eosTokenId == 2 {
            guard let largest = ids.max() else { return 0 }
            return ids.firstIndex(of: largest) ?? 0
        }
        return ids.firstIndex(of: eosTokenId) ?? 0
    }

    /// Old checkpoints also store the non-persistent `embeddings.position_ids` buffer; it is accepted when it holds
    /// `0..<max_position_embeddings` and rejected otherwise.
    static func checkPositionIDsBuffer(prefix: String, config: CLIPTextConfig, reader: WeightReader) {
        let name = "\(prefix)embeddings.position_ids"
        guard reader.contains(name) else { return }
        let buffer = reader.tensor(name, shape: [1, config.maxPositionEmbeddings])
        if buffer.doubles() != (0..<config.maxPositionEmbeddings).map(Double.init) {
            reader.reject(name, reason: "expected the positions 0..<\(config.maxPositionEmbeddings)")
        }
    }
}

/// One pre-LN CLIP encoder layer: `x += out_proj(causal MHA(LN1 x))`, `x += fc2(quick_gelu(fc1(LN2 x)))`.
struct CLIPEncoderLayer: Sendable {
    let name: String
    let heads: Int
    let eps: Float
    let norm1: TextEncoderNormParameters
    let norm2: TextEncoderNormParameters
    let query: TextEncoderLinear
    let key: TextEncoderLinear
    let value: TextEncoderLinear
    let output: TextEncoderLinear
    let fc1: TextEncoderLinear
    let fc2: TextEncoderLinear

    init(prefix: String, config: CLIPTextConfig, reader: WeightReader, dtype: DType) throws {
        let width = config.hiddenSize
        func linear(_ name: String, _ inputs: Int, _ outputs: Int) throws -> TextEncoderLinear {
            try TextEncoderLinear("\(prefix).\(name)", inFeatures: inputs, outFeatures: outputs, hasBias: true, reader: reader, dtype: dtype)
        }
        name = prefix
        heads = config.numAttentionHeads
        eps = config.layerNormEps
        norm1 = try TextEncoderNormParameters("\(prefix).layer_norm1", width: width, hasBias: true, reader: reader, dtype: dtype)
        norm2 = try TextEncoderNormParameters("\(prefix).layer_norm2", width: width, hasBias: true, reader: reader, dtype: dtype)
        query = try linear("self_attn.q_proj", width, width)
        key = try linear("self_attn.k_proj", width, width)
        value = try linear("self_attn.v_proj", width, width)
        output = try linear("self_attn.out_proj", width, width)
        fc1 = try linear("mlp.fc1", width, config.intermediateSize)
        fc2 = try linear("mlp.fc2", config.intermediateSize, width)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let normed = try CPUOps.layerNorm(x, weight: norm1.weight, bias: norm1.bias, eps: eps)
        let headDim = x.shape[2] / heads
        let attended = try TextEncoderAttention.attend(
            query: query(normed), key: key(normed), value: value(normed), heads: heads,
            scale: Float(1 / Double(headDim).squareRoot()), bias: nil, causal: true, context: "\(name).self_attn")
        let afterAttention = try TextEncoderElementwise.add(x, output(attended), context: "\(name) attention residual")
        let normed2 = try CPUOps.layerNorm(afterAttention, weight: norm2.weight, bias: norm2.bias, eps: eps)
        let activated = try TextEncoderElementwise.quickGELU(fc1(normed2), context: "\(name).mlp")
        return try TextEncoderElementwise.add(afterAttention, fc2(activated), context: "\(name) MLP residual")
    }
}
