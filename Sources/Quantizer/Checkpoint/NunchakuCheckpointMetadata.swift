/// The `__metadata__` of a Nunchaku merged single-file FLUX checkpoint, as `nunchaku.merge_safetensors` writes it
/// (research/nunchaku-internals.md §1.1b): `config` (the diffusers config.json text), `model_class` and
/// `quantization_config` (Python's `json.dumps` of the method, weight/activation formats and rank, byte for byte).
public enum NunchakuCheckpointMetadata {
    /// Nunchaku's FLUX model class name.
    public static let fluxModelClass = "NunchakuFluxTransformer2dModel"

    /// The `quantization_config` text for `format` and `rank`:
    /// INT4 `{"method": "svdquant", "weight": {"dtype": "int4", "scale_dtype": null, "group_size": 64}, …, "rank": R}`,
    /// NVFP4 with `fp4_e2m1_all`, scale dtypes `[null, "fp8_e4m3_nan"]` (weights) and `"fp8_e4m3_nan"` (activations),
    /// group size 16.
    public static func quantizationConfig(format: W4A4Format, rank: Int) -> String {
        let (dtype, weightScale, activationScale) = format == .int4
            ? ("\"int4\"", "null", "null") : ("\"fp4_e2m1_all\"", "[null, \"fp8_e4m3_nan\"]", "\"fp8_e4m3_nan\"")
        let group = format.groupSize
        return "{\"method\": \"svdquant\", "
            + "\"weight\": {\"dtype\": \(dtype), \"scale_dtype\": \(weightScale), \"group_size\": \(group)}, "
            + "\"activation\": {\"dtype\": \(dtype), \"scale_dtype\": \(activationScale), \"group_size\": \(group)}, "
            + "\"rank\": \(rank)}"
    }

    /// The three entries for a FLUX checkpoint.
    public static func flux(configText: String, format: W4A4Format, rank: Int) -> [String: String] {
        ["config": configText, "model_class": fluxModelClass, "quantization_config": quantizationConfig(format: format, rank: rank)]
    }
}
