import NunchakuCore

/// Synthetic checkpoints in the format of Nunchaku's 4-bit T5 (`TinyChatW4Layer`s, group 128), for tests,
/// self-tests and timings without the real file.
public enum TinyChatSyntheticCheckpoint {
    /// The tensors of a random TinyChat layer `name` `[outFeatures, inFeatures]`: uniform random codes, scales
    /// s ∈ [0.5, 1.5]·2/(15·√K) and `scaled_zeros` ≈ −7.5·s (so weights are about ±1/√K), bf16, the padding group
    /// rows zero as TinyChat writes them.
    public static func layer(name: String, outFeatures: Int, inFeatures: Int, seed: UInt64) throws -> [String: Tensor] {
        let groupSize = T5AWQCheckpoint.groupSize
        let groups = inFeatures / groupSize
        let stored = TinyChatW4Layer.storedGroupCount(inFeatures: inFeatures, groupSize: groupSize)
        let nameSeed = SplitMix64.mix(seed ^ RandomStageWeights.fnv1a(name))
        let codes = RandomStageWeights.fill(count: outFeatures * inFeatures / 4, seed: nameSeed) { UInt16(truncatingIfNeeded: $0 >> 17) }
        let unit = 2 / (15 * Float(inFeatures).squareRoot())
        var generator = SplitMix64(seed: SplitMix64.mix(nameSeed ^ 0x5CA1E))
        var scales = [Float](repeating: 0, count: stored * outFeatures), zeros = scales
        for index in 0..<(groups * outFeatures) {
            let scale = FloatFormats.float(bf16: FloatFormats.bf16Bits(unit * (0.5 + Float(generator.next() >> 40) / Float(1 << 24))))
            scales[index] = scale
            zeros[index] = -scale * (7 + Float(generator.next() >> 40) / Float(1 << 24))
        }
        return [
            "\(name).qweight": try codes.withUnsafeBytes { try Tensor(shape: [outFeatures / 4, inFeatures], dtype: .i16, bytes: $0) },
            "\(name).scales": Tensor.rounding(scales, shape: [stored, outFeatures], to: .bf16),
            "\(name).scaled_zeros": Tensor.rounding(zeros, shape: [stored, outFeatures], to: .bf16),
        ]
    }

    /// A T5 encoder checkpoint with every block linear (q, k, v, o, wi_0, wi_1, wo) a random TinyChat layer and the
    /// rest (embedding, norms, relative position bias) `RandomStageWeights`; d_model, inner and d_ff multiples of 128.
    public static func t5(config: T5EncoderConfig, seed: UInt64) throws -> [String: Tensor] {
        let dense = RandomStageWeights(shapes: config.weightShapes, seed: seed)
        var tensors: [String: Tensor] = [:]
        for (name, shape) in config.weightShapes {
            if name.hasPrefix("encoder.block."), shape.count == 2, !name.contains("relative_attention_bias") {
                let layer = String(name.dropLast(".weight".count))
                tensors.merge(try self.layer(name: layer, outFeatures: shape[0], inFeatures: shape[1], seed: seed)) { $1 }
            } else {
                tensors[name] = try dense.tensor(named: name)
            }
        }
        return tensors
    }
}
