import NunchakuCore

extension FluxTransformer {
    /// One forward on arguments read by their diffusers names (`hidden_states`, `encoder_hidden_states`,
    /// `pooled_projections`, `timestep`, `guidance` when present, `img_ids`, `txt_ids`) from `inputs`; other tensors
    /// in `inputs` are ignored.
    public func forward(inputs: any TensorProvider) throws -> Tensor {
        try forward(
            hiddenStates: inputs.tensor(named: "hidden_states"),
            encoderHiddenStates: inputs.tensor(named: "encoder_hidden_states"),
            pooledProjections: inputs.tensor(named: "pooled_projections"),
            timestep: inputs.tensor(named: "timestep"),
            guidance: inputs.contains("guidance") ? inputs.tensor(named: "guidance") : nil,
            imgIds: inputs.tensor(named: "img_ids"),
            txtIds: inputs.tensor(named: "txt_ids"))
    }
}
