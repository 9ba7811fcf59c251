import Foundation
import NunchakuCore

/// The keys of a transformers `CLIPTextConfig` (`config.json` of FLUX's `text_encoder/`) that the CLIP text model uses.
public struct CLIPTextConfig: Sendable, Equatable, Decodable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var maxPositionEmbeddings: Int
    /// The MLP activation; only `quick_gelu` (CLIP-L, as in FLUX) is supported.
    public var hiddenAct: String
    public var layerNormEps: Float
    /// Picks the pooling rule: 2 (legacy configs, FLUX's CLIP-L) pools at the largest input id, anything else at the
    /// first position holding this id.
    public var eosTokenId: Int

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                maxPositionEmbeddings: Int, hiddenAct: String = "quick_gelu", layerNormEps: Float = 1e-5,
                eosTokenId: Int) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
        self.eosTokenId = eosTokenId
    }

    /// The config in `data` (a `config.json`), checked; `source` names it in errors.
    public static func decode(_ data: Data, source: String) throws -> CLIPTextConfig {
        let config = try decodeTextEncoderConfig(CLIPTextConfig.self, from: data, source: source)
        try config.validate(source: source)
        return config
    }

    /// Throws unless the sizes are positive, the heads divide the width and the activation is supported.
    public func validate(source: String) throws {
        try requirePositive([
            "vocab_size": vocabSize, "hidden_size": hiddenSize, "intermediate_size": intermediateSize,
            "num_hidden_layers": numHiddenLayers, "num_attention_heads": numAttentionHeads,
            "max_position_embeddings": maxPositionEmbeddings,
        ], source: source)
        guard hiddenSize % numAttentionHeads == 0 else {
            throw NunchakuError.invalidArgument(
                context: source, reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
        guard hiddenAct == "quick_gelu" else {
            throw NunchakuError.unsupported(context: source, reason: "hidden_act `\(hiddenAct)`: only quick_gelu is implemented")
        }
    }

    /// The width of one attention head.
    public var headDim: Int { hiddenSize / numAttentionHeads }
}
