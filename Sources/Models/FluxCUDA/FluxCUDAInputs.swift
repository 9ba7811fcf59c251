import CPUBackend
import CUDABackend
import NunchakuCore

/// The forward arguments of the CUDA FLUX model, checked and on the GPU: bf16 latents, text states and pooled
/// embedding; the timestep and guidance sinusoids (computed on the host in float32, from the bf16-rounded
/// `timestep·1000`, exactly as the CPU model does); the float32 RoPE tables of the `[text; image]` sequence.
/// Upload once, run many forwards (a benchmark, or the steps of a sampler with new latents).
public struct FluxCUDAInputs: Sendable {
    let hiddenStates: DeviceTensor
    let encoderHiddenStates: DeviceTensor
    let pooledProjections: DeviceTensor
    let timestepSinusoid: DeviceTensor
    let guidanceSinusoid: DeviceTensor?
    let rotary: FluxCUDARotary

    public var batch: Int { hiddenStates.shape[0] }
    public var imageTokens: Int { hiddenStates.shape[1] }
    public var textTokens: Int { encoderHiddenStates.shape[1] }

    /// Checks the arguments against `config` (as `FluxTransformer.forward` does: diffusers' names and shapes, any
    /// float dtype) and uploads them.
    /// - Throws: `NunchakuError` naming the argument whose shape or dtype is wrong.
    public init(
        config: FluxConfig, context: CUDAContext, hiddenStates: Tensor, encoderHiddenStates: Tensor, pooledProjections: Tensor,
        timestep: Tensor, guidance: Tensor? = nil, imgIds: Tensor, txtIds: Tensor
    ) throws {
        let inputs = try FluxInputs(
            config: config, dtype: .bf16, hiddenStates: hiddenStates, encoderHiddenStates: encoderHiddenStates,
            pooledProjections: pooledProjections, timestep: timestep, guidance: guidance, imgIds: imgIds, txtIds: txtIds)
        func upload(_ tensor: Tensor) throws -> DeviceTensor { try DeviceTensor(uploading: tensor, context: context) }
        self.hiddenStates = try upload(inputs.hiddenStates)
        self.encoderHiddenStates = try upload(inputs.encoderHiddenStates)
        self.pooledProjections = try upload(inputs.pooledProjections)
        timestepSinusoid = try upload(FluxTimeTextEmbedding.sinusoid(inputs.scaledTimestep.floats(), dtype: .bf16))
        guidanceSinusoid = try inputs.scaledGuidance.map { try upload(FluxTimeTextEmbedding.sinusoid($0.floats(), dtype: .bf16)) }
        rotary = try FluxCUDARotary(
            RotaryTable.flux(positionIDs: inputs.positionIDs, axesDims: config.axesDimsRope, theta: 10000), context: context)
    }

    /// The arguments read by their diffusers names (`hidden_states`, `encoder_hidden_states`, `pooled_projections`,
    /// `timestep`, `guidance` when present, `img_ids`, `txt_ids`) from `inputs`.
    public init(config: FluxConfig, context: CUDAContext, inputs: any TensorProvider) throws {
        try self.init(
            config: config, context: context, hiddenStates: inputs.tensor(named: "hidden_states"),
            encoderHiddenStates: inputs.tensor(named: "encoder_hidden_states"),
            pooledProjections: inputs.tensor(named: "pooled_projections"), timestep: inputs.tensor(named: "timestep"),
            guidance: inputs.contains("guidance") ? inputs.tensor(named: "guidance") : nil,
            imgIds: inputs.tensor(named: "img_ids"), txtIds: inputs.tensor(named: "txt_ids"))
    }
}
