import NunchakuCore

extension LoRAFile {
    /// A random LoRA for a model of `config`, for checks without files: BFL-named pairs on the first double block's
    /// fused image q/k/v, its context value projection (diffusers name), its MLP output and image adaLN, the first
    /// single block's fused `linear1`, `linear2` (split in Nunchaku's layout) and adaLN, and the image embedder; each
    /// of rank `rank` with alpha `2·rank`. Values are uniform, `down` ±1/√K and `up` ±`upScale`/√rank.
    public static func random(config: FluxConfig, rank: Int = 8, upScale: Float = 0.5, seed: UInt64) throws -> LoRAFile {
        let width = config.innerDim, mlp = config.mlpHiddenDim
        var pairs: [(String, Int, Int)] = [
            ("double_blocks.0.img_attn.qkv", width, 3 * width), ("double_blocks.0.img_mlp.2", mlp, width),
            ("double_blocks.0.img_mod.lin", width, 6 * width), ("img_in", config.inChannels, width),
        ]
        if config.numSingleLayers > 0 {
            pairs += [("single_blocks.0.linear1", width, 3 * width + mlp), ("single_blocks.0.linear2", width + mlp, width),
                      ("single_blocks.0.modulation.lin", width, 3 * width)]
        }
        var random = SplitMix64(seed: seed)
        func uniform(_ count: Int, _ bound: Float) -> [Float] {
            (0..<count).map { _ in Float(Double(random.next() >> 40) / Double(1 << 23) - 1) * bound }
        }
        var tensors: [String: Tensor] = [:]
        func add(_ key: String, _ inFeatures: Int, _ outFeatures: Int) {
            tensors["\(key).lora_A.weight"] = Tensor(uniform(rank * inFeatures, 1 / Float(inFeatures).squareRoot()), shape: [rank, inFeatures])
            tensors["\(key).lora_B.weight"] = Tensor(uniform(outFeatures * rank, upScale / Float(rank).squareRoot()), shape: [outFeatures, rank])
            tensors["\(key).alpha"] = Tensor([Float(2 * rank)], shape: [])
        }
        for (key, inFeatures, outFeatures) in pairs { add(key, inFeatures, outFeatures) }
        add("transformer.transformer_blocks.0.attn.add_v_proj", width, width)
        return try LoRAFile(tensors: tensors, metadata: nil, source: "random LoRA (seed \(seed))")
    }
}
