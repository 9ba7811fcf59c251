#!/usr/bin/env python3
"""PyTorch reference for SVDQuant FLUX checkpoints: dequantize every layer of a Nunchaku file and run diffusers.

Reads a Nunchaku FLUX checkpoint (merged single file: C++ tensor names, config in the metadata), unpacks every
SVDQuant W4A4 and AWQ W4A16 layer with the NumPy inverses in svdquant_unpack.py, builds the dense weights they stand
for (research/nunchaku-internals.md §2.9: W_eff = residual/smooth + proj_up·proj_downᵀ, plus the act_unsigned shift
term of INT4 mlp_fc2 layers; AWQ adaLN de-interleaved with the folded +1 taken back out of the scale biases), maps the
Nunchaku names back to diffusers (qkv_proj → to_q/to_k/to_v, single-block out_proj ‖ mlp_fc2 → proj_out, …), and
runs FluxTransformer2DModel with those weights in fp32 and in bf16. This is a dequantize-and-multiply reference: it
does not quantize activations, so it differs from Nunchaku's kernels (and from swift-nunchaku's kernel-exact CPU
layers) by the 4-bit activation rounding. A second run replaces the W4A4-backed linears by fake-quantized ones
(svdquant_fake_quant.py: activations quantized as the kernels do, the rest in fp32, and once more in bf16) to show
how much of that distance the activation rounding accounts for.

Without --checkpoint it first writes a synthetic checkpoint (svdquant_synthetic.py: small random-weight FLUX, hidden
256 = 2 heads × 128, INT4 or NVFP4) and checks that unpacking gives back every canonical tensor.

For the fixture configuration (1 + 1 blocks, 2 heads, batch 2, 3 text tokens, a 2×3 image grid) it writes a
fixture (`--fixture`, default Tests/ModelsTests/Fixtures/flux-svdq-<variant>.safetensors) with the forward
inputs under diffusers' names, `sample` (dequantized fp32 reference), `sample_bf16`, `sample_fake_quant`,
`sample_fake_quant_bf16`, and metadata: `config`, `precision`,
`seed`, `digests` (JSON {tensor name: digest of its packed bytes}, see svdquant_synthetic.digest) so the Swift test can
check that it packs the same file. With --model-dir DIR it also writes DIR/<checkpoint>.safetensors,
DIR/inputs.safetensors and DIR/outputs.safetensors for `nunchaku run-transformer`; --blocks, --heads and --tokens
make larger models for that (no fixture then).

Usage: /work/pyref/bin/python scripts/parity/flux_svdquant_reference.py --variant all
       /work/pyref/bin/python scripts/parity/flux_svdquant_reference.py --variant int4 --model-dir /tmp/svdq-int4
       /work/pyref/bin/python scripts/parity/flux_svdquant_reference.py --variant nvfp4 --blocks 4 8 --heads 4 \
           --tokens 32 8 8 --model-dir /tmp/svdq-nvfp4-larger
       /work/pyref/bin/python scripts/parity/flux_svdquant_reference.py --checkpoint svdq-int4_r32-flux.1-dev.safetensors \
           --inputs inputs.safetensors --output reference.safetensors
"""
import argparse
import copy
import json
import os
import sys
import tempfile

import numpy as np
import torch
import diffusers
from diffusers import FluxTransformer2DModel
from safetensors import safe_open
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import svdquant_fake_quant as fake_quant  # noqa: E402
import svdquant_synthetic as synthetic  # noqa: E402
import svdquant_unpack as unpack  # noqa: E402
from flux_transformer_reference import make_inputs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures")

BASE = dict(patch_size=1, in_channels=64, attention_head_dim=128, num_attention_heads=2, joint_attention_dim=64,
            pooled_projection_dim=64, axes_dims_rope=[16, 56, 56])
VARIANTS = {
    # INT4 with guidance (dev-like), NVFP4 without (schnell-like).
    "int4": dict(precision="int4", config=dict(BASE, num_layers=1, num_single_layers=1, guidance_embeds=True)),
    "nvfp4": dict(precision="nvfp4", config=dict(BASE, num_layers=1, num_single_layers=1, guidance_embeds=False)),
}
# Timesteps and guidance whose ×1000 is exact in bf16, so bf16 runs do not move them (diffusers rounds t to the
# model dtype before scaling; a generic t such as 0.9 moves by up to 2 in bf16 and dominates the bf16 error).
TIMESTEPS, GUIDANCE = [0.5, 0.25], [4.0, 2.0]


def unpack_layer(tensors, name, kind, chunks):
    """Canonical raw-bit arrays of one layer from the packed file tensors."""
    raw = {key[len(name) + 1:]: value for key, value in tensors.items() if key.startswith(name + ".")}
    if kind == "awq":
        return {"qweight": unpack.deinterleave_rows(unpack.unpack_awq(raw["qweight"]), chunks),
                "wscales": unpack.deinterleave_rows(raw["wscales"].T, chunks).T,
                "wzeros": unpack.deinterleave_rows(raw["wzeros"].T, chunks).T,
                "bias": unpack.deinterleave_rows(raw["bias"], chunks)}
    result = {"qweight": unpack.unpack_qweight(raw["qweight"]),
              "wscales": unpack.unpack_micro_scales(raw["wscales"]) if raw["wscales"].dtype == np.uint8
              else unpack.unpack_group_scales(raw["wscales"]),
              "smooth": unpack.unpack_vector(raw["smooth"]),
              "lora_down": unpack.unpack_proj_down(raw["lora_down"]),
              "lora_up": unpack.unpack_proj_up(raw["lora_up"])}
    for vector in ("bias", "smooth_orig", "wcscales"):
        if vector in raw:
            result[vector] = unpack.unpack_vector(raw[vector])
    if "wtscale" in raw:
        result["wtscale"] = raw["wtscale"]
    return result


def read_checkpoint(path):
    """Raw-bit NumPy arrays by name (16-bit floats as int16, fp8 as uint8), the metadata, and the 16-bit dtype."""
    tensors, half = {}, torch.bfloat16
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
        for name in f.keys():
            tensor = f.get_tensor(name)
            if tensor.dtype in (torch.bfloat16, torch.float16):
                half = tensor.dtype
                tensors[name] = tensor.view(torch.int16).numpy()
            elif tensor.dtype == torch.float8_e4m3fn:
                tensors[name] = tensor.view(torch.uint8).numpy()
            else:
                tensors[name] = tensor.numpy()
    return tensors, metadata, half


def diffusers_state(tensors, config, precision, half):
    """The diffusers FluxTransformer2DModel state dict (fp32) for a Nunchaku checkpoint's tensors."""
    state, d = {}, config["num_attention_heads"] * config["attention_head_dim"]

    def dense(name):
        return torch.from_numpy(unpack.float_values(tensors[name], half)).float()

    def w4a4(name, after_gelu=False):
        canonical = unpack_layer(tensors, name, "w4a4", None)
        weight, bias = unpack.w4a4_dense(canonical, precision, after_gelu and precision == "int4", half)
        return torch.from_numpy(weight).float(), torch.from_numpy(bias).float()

    def adaln(name, chunks):
        weight, bias = unpack.awq_dense(unpack_layer(tensors, name, "awq", chunks), half)
        width = bias.shape[0] // chunks
        for chunk in sorted({1, chunks - 2}):  # diffusers adds the 1 itself: x·(1 + scale) + shift
            bias[chunk * width:(chunk + 1) * width] -= 1
        return torch.from_numpy(weight).float(), torch.from_numpy(bias).float()

    def put(prefix, weight_bias):
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = weight_bias

    for name, kind, _, _, _ in synthetic.layers(config):
        if kind == "dense":
            put(name, (dense(f"{name}.weight"), dense(f"{name}.bias")))
    for i in range(config["num_layers"]):
        p = f"transformer_blocks.{i}"
        put(f"{p}.norm1.linear", adaln(f"{p}.norm1.linear", 6))
        put(f"{p}.norm1_context.linear", adaln(f"{p}.norm1_context.linear", 6))
        for fused, parts in ((f"{p}.qkv_proj", ("to_q", "to_k", "to_v")),
                             (f"{p}.qkv_proj_context", ("add_q_proj", "add_k_proj", "add_v_proj"))):
            weight, bias = w4a4(fused)
            for index, part in enumerate(parts):
                put(f"{p}.attn.{part}", (weight[index * d:(index + 1) * d], bias[index * d:(index + 1) * d]))
        put(f"{p}.attn.to_out.0", w4a4(f"{p}.out_proj"))
        put(f"{p}.attn.to_add_out", w4a4(f"{p}.out_proj_context"))
        put(f"{p}.ff.net.0.proj", w4a4(f"{p}.mlp_fc1"))
        put(f"{p}.ff.net.2", w4a4(f"{p}.mlp_fc2", after_gelu=True))
        put(f"{p}.ff_context.net.0.proj", w4a4(f"{p}.mlp_context_fc1"))
        put(f"{p}.ff_context.net.2", w4a4(f"{p}.mlp_context_fc2", after_gelu=True))
        for norm in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            state[f"{p}.attn.{norm}.weight"] = dense(f"{p}.{norm}.weight")
    for i in range(config["num_single_layers"]):
        p = f"single_transformer_blocks.{i}"
        put(f"{p}.norm.linear", adaln(f"{p}.norm.linear", 3))
        weight, bias = w4a4(f"{p}.qkv_proj")
        for index, part in enumerate(("to_q", "to_k", "to_v")):
            put(f"{p}.attn.{part}", (weight[index * d:(index + 1) * d], bias[index * d:(index + 1) * d]))
        put(f"{p}.proj_mlp", w4a4(f"{p}.mlp_fc1"))
        attention_weight, attention_bias = w4a4(f"{p}.out_proj")
        mlp_weight, mlp_bias = w4a4(f"{p}.mlp_fc2", after_gelu=True)
        put(f"{p}.proj_out", (torch.cat([attention_weight, mlp_weight], dim=1), attention_bias + mlp_bias))
        for norm in ("norm_q", "norm_k"):
            state[f"{p}.attn.{norm}.weight"] = dense(f"{p}.{norm}.weight")
    return state


def check_unpacking(tensors, canonical, config):
    """Every unpacked tensor equals the canonical one it was packed from."""
    chunk_counts = {name: extra for name, kind, _, _, extra in synthetic.layers(config) if kind == "awq"}
    for name, layer in canonical.items():
        kind = "awq" if name in chunk_counts else "w4a4"
        unpacked = unpack_layer(tensors, name, kind, chunk_counts.get(name))
        for tensor, value in layer.items():
            assert np.array_equal(unpacked[tensor], synthetic.bits(value)), f"{name}.{tensor} does not unpack back"


def run(model, inputs, dtype):
    """One forward with the model (a copy) and the float inputs in `dtype`."""
    cast = {k: (v.to(dtype) if k not in ("img_ids", "txt_ids") else v) for k, v in inputs.items()}
    with torch.no_grad():
        return copy.deepcopy(model).to(dtype)(**cast, return_dict=False)[0].float()


def reference(path, inputs):
    """Outputs of the checkpoint at `path` on `inputs` — `sample` (dequantized, fp32), `sample_bf16` (dequantized,
    bf16), `sample_fake_quant` and `sample_fake_quant_bf16` (with Nunchaku's 4-bit activation quantization,
    svdquant_fake_quant.py) — and the file's tensors."""
    tensors, metadata, half = read_checkpoint(path)
    config = {k: v for k, v in json.loads(metadata["config"]).items() if not k.startswith("_")}
    precision = "nvfp4" if any(v.dtype == np.uint8 and k.endswith(".wscales") for k, v in tensors.items()) else "int4"
    model = FluxTransformer2DModel(**config).eval()
    model.load_state_dict(diffusers_state(tensors, config, precision, half), strict=True)
    outputs = {"sample": run(model, inputs, torch.float32), "sample_bf16": run(model, inputs, torch.bfloat16)}
    fake_quant.install(model, lambda name: unpack_layer(tensors, name, "w4a4", None), config, precision, half)
    outputs["sample_fake_quant"] = run(model, inputs, torch.float32)
    outputs["sample_fake_quant_bf16"] = run(model, inputs, torch.bfloat16)
    return outputs, tensors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=sorted(VARIANTS) + ["all"], default="all")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--fixture", help="fixture path (default: Tests/ModelsTests/Fixtures/flux-svdq-<variant>.safetensors)")
    parser.add_argument("--model-dir", help="also write the checkpoint, inputs and outputs here")
    parser.add_argument("--blocks", type=int, nargs=2, metavar=("DOUBLE", "SINGLE"),
                        help="block counts instead of the fixtures' 1 + 1 (use with --model-dir)")
    parser.add_argument("--heads", type=int, help="attention heads of 128 instead of 2 (use with --model-dir)")
    parser.add_argument("--tokens", type=int, nargs=3, default=[3, 2, 3], metavar=("TEXT", "H", "W"),
                        help="text tokens and image grid (default 3, 2×3)")
    parser.add_argument("--checkpoint", help="a Nunchaku FLUX merged file to run instead of a synthetic one")
    parser.add_argument("--inputs", help="with --checkpoint: forward inputs (.safetensors, diffusers names)")
    parser.add_argument("--output", help="with --checkpoint: where to write the outputs (`sample`, …)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    diffusers.utils.logging.set_verbosity_error()

    if args.checkpoint:
        with safe_open(args.inputs, framework="pt") as f:
            inputs = {name: f.get_tensor(name).float() for name in f.keys()}
        outputs, _ = reference(args.checkpoint, inputs)
        save_file({k: v.contiguous() for k, v in outputs.items()}, args.output)
        print(f"wrote {args.output}: {', '.join(outputs)} {tuple(outputs['sample'].shape)}")
        return

    for variant in sorted(VARIANTS) if args.variant == "all" else [args.variant]:
        run_synthetic(variant, args)


def run_synthetic(variant, args):
    """Writes one synthetic checkpoint, runs the reference on it, and writes the fixture and/or model folder."""
    precision, config = VARIANTS[variant]["precision"], dict(VARIANTS[variant]["config"])
    if args.blocks:
        config["num_layers"], config["num_single_layers"] = args.blocks
    if args.heads:
        config["num_attention_heads"] = args.heads
    is_fixture = not args.blocks and not args.heads and args.tokens == [3, 2, 3]
    packed, canonical = synthetic.checkpoint(config, precision, args.seed)
    config_json = json.dumps(dict(FluxTransformer2DModel(**config).config), default=list)
    metadata = {"config": config_json, "quantization_config": synthetic.quantization_config(precision),
                "model_class": "NunchakuFluxTransformer2dModel"}
    folder = tempfile.mkdtemp(prefix="flux-svdq-") if not args.model_dir \
        else args.model_dir if args.variant != "all" else os.path.join(args.model_dir, variant)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"svdq-{precision}_r{synthetic.RANK}-flux-tiny.safetensors")
    save_file({k: v.contiguous() for k, v in packed.items()}, path, metadata=metadata)

    generator = torch.Generator().manual_seed(args.seed + 1)
    inputs = make_inputs(config, 2, args.tokens[0], tuple(args.tokens[1:]), generator)
    inputs["timestep"] = torch.tensor(TIMESTEPS)
    if config["guidance_embeds"]:
        inputs["guidance"] = torch.tensor(GUIDANCE)
    outputs, tensors = reference(path, inputs)
    check_unpacking(tensors, canonical, config)
    sample = outputs["sample"]
    relative = {k: ((v - sample).norm() / sample.norm()).item() for k, v in outputs.items() if k != "sample"}
    print(f"{variant}: {len(packed)} tensors in {path} ({os.path.getsize(path)} bytes); sample "
          f"{tuple(sample.shape)}, rms {sample.pow(2).mean().sqrt():.4f}; relative to it: bf16 "
          f"{relative['sample_bf16']:.3e}, fake-quantized activations {relative['sample_fake_quant']:.3e}")

    if is_fixture:
        fixture = args.fixture or os.path.join(FIXTURES, f"flux-svdq-{variant}.safetensors")
        tensors_out = {k: v.contiguous() for k, v in inputs.items()}
        tensors_out.update({k: v.contiguous() for k, v in outputs.items()})
        digests = {name: synthetic.digest(value) for name, value in sorted(packed.items())}
        save_file(tensors_out, fixture, metadata={
            "config": config_json, "precision": precision, "seed": str(args.seed), "rank": str(synthetic.RANK),
            "digests": json.dumps(digests), "generator": "scripts/parity/flux_svdquant_reference.py",
            "torch": torch.__version__, "diffusers": diffusers.__version__})
        print(f"  wrote {fixture} ({os.path.getsize(fixture)} bytes)")
    if args.model_dir:
        save_file({k: v.contiguous() for k, v in inputs.items()}, os.path.join(folder, "inputs.safetensors"))
        save_file({k: v.contiguous() for k, v in outputs.items()}, os.path.join(folder, "outputs.safetensors"))
        print(f"  wrote {folder}/inputs.safetensors and outputs.safetensors")
    else:
        os.remove(path)
        os.rmdir(folder)


if __name__ == "__main__":
    main()
