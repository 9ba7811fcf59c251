import CPUBackend
import NunchakuCore

/// The forward arguments checked against the config and each other, and rounded to the compute dtype.
struct FluxInputs {
    let hiddenStates: Tensor
    let encoderHiddenStates: Tensor
    let pooledProjections: Tensor
    /// `timestep` rounded to the compute dtype, times 1000, rounded again (diffusers: `timestep.to(dtype) * 1000`).
    let scaledTimestep: Tensor
    let scaledGuidance: Tensor?
    /// `[T + N, axes]` f32: text ids, then image ids.
    let positionIDs: Tensor

    init(
        config: FluxConfig, dtype: DType, hiddenStates: Tensor, encoderHiddenStates: Tensor, pooledProjections: Tensor,
        timestep: Tensor, guidance: Tensor?, imgIds: Tensor, txtIds: Tensor
    ) throws {
        let named = [("hidden_states", hiddenStates), ("encoder_hidden_states", encoderHiddenStates),
                     ("pooled_projections", pooledProjections), ("timestep", timestep), ("img_ids", imgIds), ("txt_ids", txtIds)]
            + (guidance.map { [("guidance", $0)] } ?? [])
        for (name, tensor) in named where !tensor.dtype.isFloatingPoint && name != "img_ids" && name != "txt_ids" {
            throw NunchakuError.dtypeMismatch(context: name, expected: cpuActivationDTypes, actual: tensor.dtype)
        }
        guard hiddenStates.rank == 3, hiddenStates.shape[2] == config.inChannels else {
            throw NunchakuError.invalidArgument(
                context: "hidden_states", reason: "expected [B, N, \(config.inChannels)], got \(hiddenStates.shape)")
        }
        let (batch, imageTokens) = (hiddenStates.shape[0], hiddenStates.shape[1])
        guard batch > 0, imageTokens > 0 else {
            throw NunchakuError.invalidArgument(context: "hidden_states", reason: "needs at least one sample and one token, got \(hiddenStates.shape)")
        }
        let textTokens = encoderHiddenStates.rank == 3 ? encoderHiddenStates.shape[1] : 0
        try Self.expect(encoderHiddenStates, [batch, textTokens, config.jointAttentionDim], "encoder_hidden_states")
        try Self.expect(pooledProjections, [batch, config.pooledProjectionDim], "pooled_projections")
        try Self.expect(timestep, [batch], "timestep")
        try Self.expect(imgIds, [imageTokens, config.axesDimsRope.count], "img_ids")
        try Self.expect(txtIds, [textTokens, config.axesDimsRope.count], "txt_ids")
        switch (guidance, config.guidanceEmbeds) {
        case let (guidance?, true): try Self.expect(guidance, [batch], "guidance")
        case (nil, true):
            throw NunchakuError.invalidArgument(context: "guidance", reason: "this model embeds guidance (guidance_embeds = true); pass a [B] guidance scale")
        case (_?, false):
            throw NunchakuError.invalidArgument(context: "guidance", reason: "this model has no guidance embedder (guidance_embeds = false); pass no guidance")
        case (nil, false): break
        }

        self.hiddenStates = hiddenStates.converted(to: dtype)
        self.encoderHiddenStates = encoderHiddenStates.converted(to: dtype)
        self.pooledProjections = pooledProjections.converted(to: dtype)
        scaledTimestep = Self.scaledBy1000(timestep, dtype)
        scaledGuidance = guidance.map { Self.scaledBy1000($0, dtype) }
        let ids = txtIds.floats() + imgIds.floats()
        positionIDs = Tensor(ids, shape: [textTokens + imageTokens, config.axesDimsRope.count])
    }

    private static func expect(_ tensor: Tensor, _ shape: [Int], _ name: String) throws {
        guard tensor.shape == shape else { throw NunchakuError.shapeMismatch(context: name, expected: shape, actual: tensor.shape) }
    }

    /// `round(round(v) · 1000)` in `dtype`.
    static func scaledBy1000(_ values: Tensor, _ dtype: DType) -> Tensor {
        let rounded = values.converted(to: dtype).floats()
        return Tensor.rounding(rounded.map { $0 * 1000 }, shape: values.shape, to: dtype)
    }
}
