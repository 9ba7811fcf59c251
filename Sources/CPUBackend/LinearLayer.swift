import NunchakuCore

/// A layer mapping activations [M, inFeatures] to [M, outFeatures] on the CPU: a plain linear, an SVDQuant W4A4
/// linear, an AWQ W4A16 linear. Models hold layers through this so quantized and unquantized ones are interchangeable.
public protocol LinearLayer: Sendable {
    /// The layer's name in the checkpoint, used in error messages.
    var name: String { get }
    var inFeatures: Int { get }
    var outFeatures: Int { get }
    /// `x` is [M, inFeatures] in the activation dtype (f32, bf16 or f16); the result has the same dtype.
    func forward(_ x: Tensor) throws -> Tensor
}
