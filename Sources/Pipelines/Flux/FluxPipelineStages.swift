import Models
import NunchakuCore

/// The CLIP text encoder as the FLUX pipeline uses it: padded token ids (77 per prompt) in, hidden states and the
/// pooled output out. `CLIPTextModel` (CPU) conforms; GPU encoders conform with the same numerics contract.
public protocol CLIPTextEncoding: Sendable {
    /// - Parameter tokenIDs: one row of ids per prompt, all rows the same length.
    /// - Returns: `lastHiddenState` `[batch, tokens, hidden]` and `pooled` `[batch, hidden]` (or the projection size).
    func encode(tokenIDs: [[Int]]) throws -> CLIPTextOutput
}

/// The T5 encoder as the FLUX pipeline uses it: padded token ids (256 or 512 per prompt) in, the final hidden states
/// `[batch, tokens, d_model]` out. `T5EncoderModel` (CPU) conforms.
public protocol T5TextEncoding: Sendable {
    func encode(tokenIDs: [[Int]]) throws -> Tensor
}

/// The VAE decoder as the FLUX pipeline uses it: unpacked diffusion latents `[batch, 16, h, w]` (before the VAE's
/// scaling and shift) in, images `[batch, 3, 8·h, 8·w]` nominally in [-1, 1] out. `AutoencoderKLDecoder` conforms.
public protocol FluxLatentDecoding: Sendable {
    func decode(diffusionLatents: Tensor) throws -> Tensor
}

/// The FLUX transformer as the pipeline uses it: named inputs (`hidden_states`, `encoder_hidden_states`,
/// `pooled_projections`, `timestep`, `img_ids`, `txt_ids`, and `guidance` for guidance-distilled models) in, the
/// predicted velocity `[batch, image tokens, in_channels]` out. `FluxTransformer` (CPU) and `FluxCUDATransformer`
/// conform.
public protocol FluxDenoising: Sendable {
    var config: FluxConfig { get }
    func forward(inputs: any TensorProvider) throws -> Tensor
    /// The forwards of one sampling loop. `fixedInputs` holds the arguments that every step shares
    /// (`encoder_hidden_states`, `pooled_projections`, `img_ids`, `txt_ids`, and `guidance` if any); each step then
    /// gives only `hidden_states` and `timestep`. The default calls `forward(inputs:)` with both merged; the CUDA
    /// transformer uploads the shared arguments and builds its RoPE tables once.
    func denoisingLoop(fixedInputs: [String: Tensor]) -> any FluxDenoisingLoop
}

/// A transformer bound to one sampling loop's shared arguments (`FluxDenoising.denoisingLoop(fixedInputs:)`).
public protocol FluxDenoisingLoop {
    /// The predicted velocity `[B, N, in_channels]` for latents `hidden_states` `[B, N, in_channels]` at
    /// `timestep` `[B]`.
    mutating func velocity(hiddenStates: Tensor, timestep: Tensor) throws -> Tensor
}

extension FluxDenoising {
    public func denoisingLoop(fixedInputs: [String: Tensor]) -> any FluxDenoisingLoop {
        FluxForwardLoop(transformer: self, fixedInputs: fixedInputs)
    }
}

/// The default loop: each step is one `forward(inputs:)` on the shared arguments plus the step's two.
struct FluxForwardLoop: FluxDenoisingLoop {
    let transformer: any FluxDenoising
    let fixedInputs: [String: Tensor]

    func velocity(hiddenStates: Tensor, timestep: Tensor) throws -> Tensor {
        try transformer.forward(inputs: Self.stepArguments(fixedInputs, hiddenStates: hiddenStates, timestep: timestep))
    }

    /// One step's full transformer arguments: the loop's shared ones plus `hidden_states` and `timestep`.
    static func stepArguments(_ fixedInputs: [String: Tensor], hiddenStates: Tensor, timestep: Tensor) -> [String: Tensor] {
        var arguments = fixedInputs
        arguments["hidden_states"] = hiddenStates
        arguments["timestep"] = timestep
        return arguments
    }
}

extension CLIPTextModel: CLIPTextEncoding {}
extension T5EncoderModel: T5TextEncoding {}
extension AutoencoderKLDecoder: FluxLatentDecoding {}
extension FluxTransformer: FluxDenoising {}
