/// A model that takes LoRAs at run time (the CPU and CUDA FLUX transformers), for code holding it behind a protocol.
public protocol LoRAAdaptable {
    /// The LoRAs applied to the model.
    var loras: LoRAStack { get }
}

extension FluxTransformer: LoRAAdaptable {}
extension FluxCUDATransformer: LoRAAdaptable {}
