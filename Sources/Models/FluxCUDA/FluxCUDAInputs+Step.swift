import CPUBackend
import CUDABackend
import NunchakuCore

extension FluxCUDAInputs {
    /// A sampler's next step: these inputs with new latents and timestep. The text states, pooled embedding, guidance
    /// and RoPE tables stay the ones already on the GPU, so a step uploads only `[B, N, C]` latents and the timestep
    /// sinusoid (no host RoPE tables, no text-state conversion).
    /// - Throws: `NunchakuError` naming `hidden_states` or `timestep` when its shape differs from these inputs' or it
    ///   is not a float tensor.
    public func nextStep(hiddenStates: Tensor, timestep: Tensor, context: CUDAContext) throws -> FluxCUDAInputs {
        try FluxCUDAInputs(stepAfter: self, hiddenStates: hiddenStates, timestep: timestep, context: context)
    }

    private init(stepAfter base: FluxCUDAInputs, hiddenStates: Tensor, timestep: Tensor, context: CUDAContext) throws {
        for (name, tensor, shape) in [("hidden_states", hiddenStates, base.hiddenStates.shape), ("timestep", timestep, [base.batch])] {
            guard tensor.dtype.isFloatingPoint else {
                throw NunchakuError.dtypeMismatch(context: name, expected: cpuActivationDTypes, actual: tensor.dtype)
            }
            guard tensor.shape == shape else { throw NunchakuError.shapeMismatch(context: name, expected: shape, actual: tensor.shape) }
        }
        self.hiddenStates = try DeviceTensor(uploading: hiddenStates.converted(to: .bf16), context: context)
        let scaled = FluxInputs.scaledBy1000(timestep, .bf16)
        timestepSinusoid = try DeviceTensor(uploading: FluxTimeTextEmbedding.sinusoid(scaled.floats(), dtype: .bf16), context: context)
        encoderHiddenStates = base.encoderHiddenStates
        pooledProjections = base.pooledProjections
        guidanceSinusoid = base.guidanceSinusoid
        rotary = base.rotary
    }
}
