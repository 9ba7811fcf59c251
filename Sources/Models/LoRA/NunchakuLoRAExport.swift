import CPUBackend
import NunchakuCore
import SVDQuant

/// Nunchaku's converted-LoRA format for one SVDQuant FLUX checkpoint (research/nunchaku-internals.md §6 step 3, what
/// `python -m nunchaku.lora.flux.convert` writes and `update_lora_params` loads): the LoRA's ranks merged onto the
/// checkpoint's own low-rank branches, so the file replaces them.
///
/// - W4A4 block layers (C++ names): `<layer>.lora_down` / `<layer>.lora_up`, the SVD ranks followed by the LoRA's
///   (q/k/v fused, single-block `proj_out` split into `out_proj` and `mlp_fc2`, ranks padded to 16), packed in
///   Nunchaku's MMA tile layout like the checkpoint's `proj_down`/`proj_up`.
/// - AWQ adaLN layers: `<layer>.lora_down` `[rank, K]` plain and `<layer>.lora_up` `[N, rank]` with Nunchaku's
///   interleaved rows (the LoRA alone: AWQ layers have no low-rank branch of their own).
/// - Unquantized layers (embedders, `norm_out`, `proj_out`): diffusers-named `<layer>.lora_A.weight` /
///   `<layer>.lora_B.weight`, which Nunchaku merges into the BF16 weights.
/// The scale (alpha / rank) and `strength` are folded into the up halves. Tensors are in the checkpoint's 16-bit type.
public enum NunchakuLoRAExport {
    /// The converted tensors by name.
    /// - Throws: `LoRAError` when the LoRA does not fit the checkpoint's model; `NunchakuError` when `files` is not an
    ///   SVDQuant checkpoint.
    public static func convert(_ lora: LoRAFile, strength: Float = 1, base files: FluxModelFiles) throws -> [String: Tensor] {
        guard case let .svdquant(checkpoint) = try files.weightSource() else {
            throw NunchakuError.invalidArgument(context: files.source, reason: "is not an SVDQuant checkpoint; Nunchaku's converted LoRAs are made for one")
        }
        let map = FluxLoRALayerMap(config: files.config, layout: .nunchaku, fuseSeparateQKV: false, interleavedModulation: true)
        let branches = try LoRALayerPlan.branches(of: lora, on: map)
        var tensors: [String: Tensor] = [:]
        for (name, unscaled) in branches {
            let branch = unscaled.scaled(by: strength)
            switch checkpoint.kind(ofLayer: name) {
            case .w4a4:
                let merged = try checkpoint.w4a4Weights(name).appendingLowRank(branch).tensors(layout: .nunchaku)
                tensors["\(name).lora_down"] = merged.projDown
                tensors["\(name).lora_up"] = merged.projUp
            case .awq:
                let dtype = try checkpoint.awqWeights(name).canonical.wscales.dtype
                tensors["\(name).lora_down"] = Tensor.rounding(branch.down, shape: [branch.rank, branch.inFeatures], to: dtype)
                tensors["\(name).lora_up"] = Tensor.rounding(branch.up, shape: [branch.outFeatures, branch.rank], to: dtype)
            case .dense, nil:
                tensors["\(name).lora_A.weight"] = Tensor.rounding(branch.down, shape: [branch.rank, branch.inFeatures], to: .bf16)
                tensors["\(name).lora_B.weight"] = Tensor.rounding(branch.up, shape: [branch.outFeatures, branch.rank], to: .bf16)
            }
        }
        return tensors
    }
}
