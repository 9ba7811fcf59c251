import NunchakuCore

/// Forward arguments for a random-weight run, under diffusers' names (a `TensorProvider` for
/// `forward(inputs:)`), shaped like a text-to-image step: latents for an image of `imageTokens` tokens laid out on
/// the most nearly square grid (1024×1024 px is 64×64 = 4096 tokens, 512×512 px 32×32 = 1024), T5 states of
/// `textTokens` tokens, σ = 0.5 and, for models that embed it, guidance 3.5.
public enum FluxRandomInputs {
    /// - Throws: `NunchakuError.invalidArgument` for a batch or token count below 1.
    public static func make(config: FluxConfig, batch: Int, imageTokens: Int, textTokens: Int, seed: UInt64 = 0) throws -> [String: Tensor] {
        guard batch >= 1, imageTokens >= 1, textTokens >= 1 else {
            throw NunchakuError.invalidArgument(
                context: "random FLUX inputs", reason: "batch \(batch), image tokens \(imageTokens), text tokens \(textTokens): each must be at least 1")
        }
        let values = FluxRandomValues(seed: seed ^ 0x1B_A5E5)
        // Position ids (0, row, column), the row and column on the last two axes.
        let axes = config.axesDimsRope.count, columns = grid(imageTokens).columns
        var imageIDs = [Float](repeating: 0, count: axes * imageTokens)
        for token in 0..<imageTokens {
            if axes >= 2 { imageIDs[axes * token + axes - 2] = Float(token / columns) }
            imageIDs[axes * token + axes - 1] = Float(token % columns)
        }
        var inputs: [String: Tensor] = [
            "hidden_states": values.uniform("hidden_states", shape: [batch, imageTokens, config.inChannels], center: 0, halfWidth: 1.7),
            "encoder_hidden_states": values.uniform(
                "encoder_hidden_states", shape: [batch, textTokens, config.jointAttentionDim], center: 0, halfWidth: 0.5),
            "pooled_projections": values.uniform("pooled_projections", shape: [batch, config.pooledProjectionDim], center: 0, halfWidth: 1),
            "timestep": Tensor([Float](repeating: 0.5, count: batch), shape: [batch]),
            "img_ids": Tensor(imageIDs, shape: [imageTokens, axes]),
            "txt_ids": Tensor(zeros: [textTokens, axes], dtype: .f32),
        ]
        if config.guidanceEmbeds { inputs["guidance"] = Tensor([Float](repeating: 3.5, count: batch), shape: [batch]) }
        return inputs
    }

    /// `(rows, columns)` with `rows · columns = tokens` and `rows ≤ columns` as close as possible.
    static func grid(_ tokens: Int) -> (rows: Int, columns: Int) {
        var rows = Int(Double(tokens).squareRoot())
        while rows > 1, tokens % rows != 0 { rows -= 1 }
        return (rows, tokens / rows)
    }
}
