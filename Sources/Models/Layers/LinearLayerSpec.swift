/// One linear layer as a model asks for it: its checkpoint name, its shape, and what the model knows about how
/// checkpoints of its layout store it. A `LinearLayerFactory` turns a spec into a layer whose outputs are in the
/// checkpoint's channel order (Nunchaku's adaLN layers stay interleaved; the model splits them).
public struct LinearLayerSpec: Sendable, Equatable {
    /// How the layer is stored in SVDQuant checkpoints of the model's layout (research/nunchaku-internals.md §1.4).
    public enum Quantization: Sendable, Equatable {
        /// Unquantized in every checkpoint (embedders, the final norm and projection of FLUX).
        case none
        /// An SVDQuant W4A4 layer. `inputFollowsGELU`: the input is a GELU output, which INT4 checkpoints quantize
        /// unsigned after adding 0.171875 (`act_unsigned`, FLUX `mlp_fc2`; research §3.6). Checkpoints do not
        /// record this, so the model says it.
        case w4a4(inputFollowsGELU: Bool)
        /// An AWQ W4A16 layer (the adaLN modulation linears of Nunchaku checkpoints).
        case awqW4A16
    }

    /// The module path, such as `transformer_blocks.0.qkv_proj`; tensors are `<name>.<tensor>`.
    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    public let quantization: Quantization

    public init(name: String, inFeatures: Int, outFeatures: Int, quantization: Quantization = .none) {
        self.name = name
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.quantization = quantization
    }
}
