import CUDABackend
import Models
import NunchakuCore

/// transformers' `CLIPTextModel` (FLUX's CLIP-L) on an NVIDIA GPU in bf16 with float32 accumulation: the same
/// graph, names and rounding points as the CPU `CLIPTextModel` (its reference). Weights live on the GPU in bf16 (the
/// embedding tables stay on the host: only the looked-up rows are uploaded); q, k and v are one fused GEMM; the
/// attention is `encoderAttention` with the causal mask. `encode` returns host tensors.
public final class CUDACLIPTextModel: CLIPTextEncoding, @unchecked Sendable {
    public let config: CLIPTextConfig
    public let context: CUDAContext
    private let gemm: CUDAGEMM
    private let tokenEmbedding: TextEncoderEmbedding
    private let positionEmbedding: TextEncoderEmbedding
    private let layers: [Layer]
    private let finalNorm: CUDAEncoderLayerNorm

    struct Layer {
        let norm1: CUDAEncoderLayerNorm
        let qkv: CUDAEncoderLinear
        let output: CUDAEncoderLinear
        let norm2: CUDAEncoderLayerNorm
        let fc1: CUDAEncoderLinear
        let fc2: CUDAEncoderLinear
    }

    /// Loads a transformers CLIP text folder (`config.json` + safetensors), like `CLIPTextModel(folder:)`.
    public convenience init(folder: String, context: CUDAContext) throws {
        let files = try TextEncoderFiles(folder: folder)
        try self.init(config: CLIPTextConfig.decode(files.configData, source: files.configPath), weights: files.weights,
                      source: folder, context: context)
    }

    /// Builds the model from transformers-named weights (v5 names or v4's `text_model.` prefix), strictly: every
    /// missing, unexpected or mis-shaped tensor is listed in one `WeightLoadingError`.
    public init(config: CLIPTextConfig, weights: any TensorProvider, source: String, context: CUDAContext,
                gemm: CUDAGEMM? = nil) throws {
        try config.validate(source: source)
        guard config.hiddenSize % 8 == 0, config.intermediateSize % 8 == 0 else {
            throw NunchakuError.unsupported(
                context: source, reason: "hidden_size \(config.hiddenSize) and intermediate_size \(config.intermediateSize) must be multiples of 8 on the GPU")
        }
        let prefix = weights.contains("text_model.embeddings.token_embedding.weight") ? "text_model." : ""
        let reader = WeightReader(weights, source: source)
        let width = config.hiddenSize
        tokenEmbedding = try TextEncoderEmbedding(
            "\(prefix)embeddings.token_embedding.weight", rows: config.vocabSize, width: width, reader: reader, dtype: .bf16)
        positionEmbedding = try TextEncoderEmbedding(
            "\(prefix)embeddings.position_embedding.weight", rows: config.maxPositionEmbeddings, width: width, reader: reader, dtype: .bf16)
        CLIPTextModel.checkPositionIDsBuffer(prefix: prefix, config: config, reader: reader)
        layers = try (0..<config.numHiddenLayers).map { index in
            let name = "\(prefix)encoder.layers.\(index)"
            func linear(_ parts: [String], _ outputs: [Int], _ inputs: Int) throws -> CUDAEncoderLinear {
                try CUDAEncoderLinear(parts.map { "\(name).\($0)" }, outputs: outputs, inFeatures: inputs, hasBias: true,
                                      weights: weights, reader: reader, context: context)
            }
            return Layer(
                norm1: try CUDAEncoderLayerNorm("\(name).layer_norm1", width: width, eps: config.layerNormEps, reader: reader),
                qkv: try linear(["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], [width, width, width], width),
                output: try linear(["self_attn.out_proj"], [width], width),
                norm2: try CUDAEncoderLayerNorm("\(name).layer_norm2", width: width, eps: config.layerNormEps, reader: reader),
                fc1: try linear(["mlp.fc1"], [config.intermediateSize], width),
                fc2: try linear(["mlp.fc2"], [width], config.intermediateSize))
        }
        finalNorm = try CUDAEncoderLayerNorm("\(prefix)final_layer_norm", width: width, eps: config.layerNormEps, reader: reader)
        try reader.finish()
        self.config = config
        self.context = context
        self.gemm = gemm ?? CUDAGEMM(context: context)
    }

    /// Runs the model on token-id rows of one length (at most `max_position_embeddings`), with the causal mask only,
    /// as FluxPipeline does. Returns the last hidden state `[B, S, D]` and the pooled output `[B, D]` (bf16, host).
    public func encode(tokenIDs: [[Int]]) throws -> CLIPTextOutput {
        let context = "CUDACLIPTextModel"
        let (batch, tokens) = try tokenBatchShape(tokenIDs, context: context)
        guard tokens <= config.maxPositionEmbeddings else {
            throw NunchakuError.invalidArgument(
                context: context, reason: "\(tokens) tokens exceed max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        let hidden = try forward(tokenIDs, batch: batch, tokens: tokens).download()
        let values = try hidden.floatValues(context: context)
        let width = config.hiddenSize
        var pooled = [Float]()
        for (row, ids) in tokenIDs.enumerated() {
            let start = (row * tokens + CLIPTextModel.poolingPosition(ids, eosTokenId: config.eosTokenId)) * width
            pooled.append(contentsOf: values[start..<(start + width)])
        }
        return CLIPTextOutput(lastHiddenState: hidden, pooled: Tensor.rounding(pooled, shape: [batch, width], to: .bf16))
    }

    /// The final-layer-normed hidden states on the GPU, `[B, S, D]` bf16.
    func forward(_ tokenIDs: [[Int]], batch: Int, tokens: Int) throws -> DeviceTensor {
        let width = config.hiddenSize
        let positions = try positionEmbedding.lookup(Array(0..<tokens))
        var embedded = [Float]()
        embedded.reserveCapacity(batch * tokens * width)
        for ids in tokenIDs { embedded.append(contentsOf: zip(try tokenEmbedding.lookup(ids), positions).map { $0 + $1 }) }
        var x = try uploadEmbeddings(embedded, batch: batch, tokens: tokens, width: width, context: self.context)
        let layout = FusedQKVLayout(heads: config.numAttentionHeads, headDim: config.headDim)
        let scale = Float(1 / Double(config.headDim).squareRoot())
        for layer in layers {
            let qkv = try layer.qkv(try layer.norm1(x, table: try layer.norm1.table(batch: batch, context: self.context), context: self.context), gemm: gemm)
            let attended = try DeviceTensor(shape: [batch, tokens, width], dtype: .bf16, context: self.context)
            try self.context.encoderAttention(qkv, layout: layout, scale: scale, causal: true, into: attended)
            try self.context.add(x, try layer.output(attended, gemm: gemm), into: x)
            let hidden = try layer.fc1(try layer.norm2(x, table: try layer.norm2.table(batch: batch, context: self.context), context: self.context), gemm: gemm)
            try self.context.quickGELU(hidden, into: hidden)
            try self.context.add(x, try layer.fc2(hidden, gemm: gemm), into: x)
        }
        x = try finalNorm(x, table: try finalNorm.table(batch: batch, context: self.context), context: self.context)
        return x
    }

    /// Bytes of weights on the GPU.
    public var deviceWeightBytes: Int {
        layers.reduce(0) { $0 + $1.qkv.deviceBytes + $1.output.deviceBytes + $1.fc1.deviceBytes + $1.fc2.deviceBytes }
    }
}
