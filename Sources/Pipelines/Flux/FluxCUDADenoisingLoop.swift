import Models
import NunchakuCore

extension FluxCUDATransformer: FluxDenoising {
    /// A loop that uploads the shared arguments and builds the RoPE tables at its first step only; later steps
    /// upload just the latents and the timestep sinusoid (`FluxCUDAInputs.nextStep`).
    public func denoisingLoop(fixedInputs: [String: Tensor]) -> any FluxDenoisingLoop {
        FluxCUDADenoisingLoop(transformer: self, fixedInputs: fixedInputs)
    }
}

/// The CUDA transformer's sampling loop: the previous step's `FluxCUDAInputs` carry the shared arguments on the GPU.
struct FluxCUDADenoisingLoop: FluxDenoisingLoop {
    let transformer: FluxCUDATransformer
    let fixedInputs: [String: Tensor]
    private var previous: FluxCUDAInputs?

    init(transformer: FluxCUDATransformer, fixedInputs: [String: Tensor]) {
        self.transformer = transformer
        self.fixedInputs = fixedInputs
    }

    mutating func velocity(hiddenStates: Tensor, timestep: Tensor) throws -> Tensor {
        let inputs: FluxCUDAInputs
        if let previous {
            inputs = try previous.nextStep(hiddenStates: hiddenStates, timestep: timestep, context: transformer.context)
        } else {
            let arguments = FluxForwardLoop.stepArguments(fixedInputs, hiddenStates: hiddenStates, timestep: timestep)
            inputs = try FluxCUDAInputs(config: transformer.config, context: transformer.context, inputs: arguments)
        }
        previous = inputs
        return try transformer.forward(inputs).download()
    }
}
