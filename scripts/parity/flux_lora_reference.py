#!/usr/bin/env python3
"""Reference outputs of diffusers' FluxTransformer2DModel with random LoRAs of every file family, for the Swift LoRA
parity tests (Tests/ModelsTests/LoRAParityTests.swift).

The base model is the small `dev` model of flux_transformer_reference.py (2+2 blocks, width 128, MLP 512, weights
from its name-hashed generator, regenerated bit for bit by the Swift test). For each family the script writes a LoRA
file `Tests/ModelsTests/Fixtures/lora-<family>.safetensors` with random values (rounded to the file's dtype, so the
fp32 reference sees exactly the stored values), loads it into a copy of the model the way diffusers does for that
family (`FluxPipeline.lora_state_dict` + `load_lora_into_transformer`, or `load_lora_adapter` for PEFT files),
and runs one fp32 forward at adapter weight 1.0 and 0.6 (`set_adapters`). `lora-outputs.safetensors` holds the
inputs, the base output `sample` and `sample_<family>_1.0` / `sample_<family>_0.6`, with the generator metadata.

Families: diffusers (`transformer.` prefix, `.alpha` keys, bf16), peft (`save_lora_adapter`: no prefix, alpha in
`lora_adapter_metadata`, fp32), kohya (`lora_unet_…` + alpha, fp16, rank 3, fused qkv/linear1), comfyui
(`diffusion_model.` + lora_down/up, bf16), xlabs (`processor.qkv_lora1…`, bf16, rank 5), bfl (BFL names with
lora_A/lora_B under `base_model.model.`, every block module, float8 e4m3).

diffusers' kohya and BFL converters hard-code FLUX.1's width (3072/12288) and block counts (19/38); this script
runs them with those constants replaced by the test model's (source text substitution, asserted). Two more
workarounds for diffusers 0.42.1, commented where they are: the kohya converter's unprefixed non-block keys get their
`transformer.` prefix back and its final-layer modules their alpha, and the PEFT reference is the adapter PEFT built (diffusers' reload ignores the metadata alpha).

Usage: /work/pyref/bin/python scripts/parity/flux_lora_reference.py
"""
import copy
import importlib.util
import inspect
import json
import os
import tempfile

import numpy as np
import torch
import diffusers
import diffusers.loaders.lora_conversion_utils as conversion
import diffusers.loaders.lora_pipeline as lora_pipeline
from diffusers import FluxPipeline
from peft import LoraConfig
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("flux_reference", os.path.join(HERE, "flux_transformer_reference.py"))
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)
FIXTURES = reference.FIXTURES
SEED = 2024


def patch_converter(name, replacements):
    """Re-defines diffusers' converter `name` with its FLUX.1 size constants replaced."""
    source = inspect.getsource(getattr(conversion, name))
    for old, new in replacements:
        assert old in source, f"{name}: {old!r} not found"
        source = source.replace(old, new)
    namespace = {}
    exec(source, conversion.__dict__, namespace)
    setattr(lora_pipeline, name, namespace[name])


def rounded(tensor, dtype):
    return tensor.to(dtype).to(torch.float32)


class LoRAMaker:
    def __init__(self, seed):
        self.generator = torch.Generator().manual_seed(seed)

    def pair(self, rank, fan_in, fan_out, dtype):
        down = rounded((torch.rand(rank, fan_in, generator=self.generator) * 2 - 1) / fan_in ** 0.5, dtype)
        up = rounded((torch.rand(fan_out, rank, generator=self.generator) * 2 - 1) * 0.6 / rank ** 0.5, dtype)
        return down, up


def double_block_shapes(width, mlp):
    return {"img_mod.lin": (width, 6 * width), "txt_mod.lin": (width, 6 * width), "img_attn.qkv": (width, 3 * width),
            "txt_attn.qkv": (width, 3 * width), "img_attn.proj": (width, width), "txt_attn.proj": (width, width),
            "img_mlp.0": (width, mlp), "img_mlp.2": (mlp, width), "txt_mlp.0": (width, mlp), "txt_mlp.2": (mlp, width)}


def make_files(config, maker):
    """{family: (file tensors in their stored dtype, fp32 tensors for diffusers)}."""
    width = config["num_attention_heads"] * config["attention_head_dim"]
    mlp = 4 * width
    doubles = double_block_shapes(width, mlp)
    files = {}

    def add(family, tensors, key, rank, shape, dtype, down_name, up_name, alpha=None):
        down, up = maker.pair(rank, shape[0], shape[1], dtype)
        tensors[f"{key}.{down_name}.weight"] = down
        tensors[f"{key}.{up_name}.weight"] = up
        if alpha is not None:
            tensors[f"{key}.alpha"] = torch.tensor(float(alpha))

    # diffusers: transformer. prefix, .alpha on every module, bf16
    t = {}
    for module, shape in [("transformer_blocks.0.attn.to_q", (width, width)), ("transformer_blocks.0.attn.to_k", (width, width)),
                          ("transformer_blocks.1.attn.add_v_proj", (width, width)), ("transformer_blocks.0.attn.to_out.0", (width, width)),
                          ("transformer_blocks.1.ff.net.0.proj", (width, mlp)), ("transformer_blocks.0.ff_context.net.2", (mlp, width)),
                          ("transformer_blocks.1.norm1_context.linear", (width, 6 * width)),
                          ("single_transformer_blocks.0.proj_out", (width + mlp, width)),
                          ("single_transformer_blocks.1.attn.to_v", (width, width)), ("single_transformer_blocks.1.proj_mlp", (width, mlp)),
                          ("single_transformer_blocks.0.norm.linear", (width, 3 * width)),
                          ("context_embedder", (config["joint_attention_dim"], width)), ("norm_out.linear", (width, 2 * width)),
                          ("time_text_embed.guidance_embedder.linear_2", (width, width))]:
        add("diffusers", t, f"transformer.{module}", 4, shape, torch.bfloat16, "lora_A", "lora_B", alpha=8)
    files["diffusers"] = (t, torch.bfloat16)

    # kohya: fused qkv and linear1, rank 3, alpha 6, fp16
    t = {}
    for key, shape in [("double_blocks_0_img_attn_qkv", (width, 3 * width)), ("double_blocks_1_txt_attn_qkv", (width, 3 * width)),
                       ("double_blocks_0_txt_attn_proj", (width, width)), ("double_blocks_1_img_mlp_2", (mlp, width)),
                       ("double_blocks_0_txt_mod_lin", (width, 6 * width)), ("single_blocks_1_linear1", (width, 3 * width + mlp)),
                       ("single_blocks_0_linear2", (width + mlp, width)), ("single_blocks_1_modulation_lin", (width, 3 * width)),
                       ("final_layer_adaLN_modulation_1", (width, 2 * width)), ("img_in", (config["in_channels"], width)),
                       ("time_in_in_layer", (256, width)), ("guidance_in_out_layer", (width, width))]:
        add("kohya", t, f"lora_unet_{key}", 3, shape, torch.float16, "lora_down", "lora_up", alpha=6)
    files["kohya"] = (t, torch.float16)

    # ComfyUI: diffusion_model. prefix, dotted BFL names, lora_down/up, alpha 2, bf16
    t = {}
    for key, shape in [("double_blocks.1.txt_attn.qkv", (width, 3 * width)), ("double_blocks.0.img_attn.proj", (width, width)),
                       ("double_blocks.1.img_mlp.0", (width, mlp)), ("single_blocks.0.linear1", (width, 3 * width + mlp)),
                       ("final_layer.linear", (width, config["in_channels"]))]:
        add("comfyui", t, f"diffusion_model.{key}", 4, shape, torch.bfloat16, "lora_down", "lora_up", alpha=2)
    files["comfyui"] = (t, torch.bfloat16)

    # XLabs: processor names, no alpha, rank 5, bf16
    t = {}
    for key, shape in [("double_blocks.0.processor.qkv_lora1", (width, 3 * width)), ("double_blocks.0.processor.proj_lora1", (width, width)),
                       ("double_blocks.1.processor.qkv_lora2", (width, 3 * width)), ("double_blocks.1.processor.proj_lora2", (width, width)),
                       ("single_blocks.0.processor.qkv_lora", (width, 3 * width))]:
        add("xlabs", t, key, 5, shape, torch.bfloat16, "down", "up")
    files["xlabs"] = (t, torch.bfloat16)

    # BFL names (fal-Kontext form: base_model.model. prefix, lora_A/lora_B), every block module, rank 2, float8
    t = {}
    for i in range(config["num_layers"]):
        for key, shape in doubles.items():
            add("bfl", t, f"base_model.model.double_blocks.{i}.{key}", 2, shape, torch.float8_e4m3fn, "lora_A", "lora_B")
    for i in range(config["num_single_layers"]):
        for key, shape in [("modulation.lin", (width, 3 * width)), ("linear1", (width, 3 * width + mlp)), ("linear2", (width + mlp, width))]:
            add("bfl", t, f"base_model.model.single_blocks.{i}.{key}", 2, shape, torch.float8_e4m3fn, "lora_A", "lora_B")
    add("bfl", t, "base_model.model.final_layer.linear", 2, (width, config["in_channels"]), torch.float8_e4m3fn, "lora_A", "lora_B")
    files["bfl"] = (t, torch.float8_e4m3fn)
    return files


def peft_file(model, maker, folder):
    """A PEFT adapter saved by diffusers' `save_lora_adapter` (no prefix, alpha in the metadata), and the model."""
    adapted = copy.deepcopy(model)
    adapted.add_adapter(LoraConfig(r=4, lora_alpha=2, target_modules=["to_k", "add_q_proj", "to_add_out", "ff.net.2", "norm1.linear",
                                                                       "proj_mlp", "x_embedder", "linear_1"]), adapter_name="lora")
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_" in name:
                parameter.copy_(rounded((torch.rand(parameter.shape, generator=maker.generator) * 2 - 1) / parameter.shape[1] ** 0.5, torch.float32))
    adapted.save_lora_adapter(folder, adapter_name="lora")
    return adapted, os.path.join(folder, "pytorch_lora_weights.safetensors")


def forward(model, inputs):
    with torch.no_grad():
        return model(**inputs, return_dict=False)[0].float()


def main():
    torch.set_num_threads(os.cpu_count() or 1)
    diffusers.utils.logging.set_verbosity_error()
    model, config, weight_spec = reference.build("dev", False, SEED, torch_init=False)
    width, mlp = config["num_attention_heads"] * config["attention_head_dim"], 4 * config["num_attention_heads"] * config["attention_head_dim"]
    patch_converter("_convert_kohya_flux_lora_to_diffusers", [("dims=[3072, 3072, 3072, 12288]", f"dims=[{width}, {width}, {width}, {mlp}]")])
    patch_converter("_convert_fal_kontext_lora_to_diffusers", [
        ("num_layers = 19", f"num_layers = {config['num_layers']}"),
        ("num_single_layers = 38", f"num_single_layers = {config['num_single_layers']}"),
        ("inner_dim = 3072", f"inner_dim = {width}")])
    inputs = reference.make_inputs(config, 2, 5, (3, 4), torch.Generator().manual_seed(SEED + 1))
    outputs = {k: v.contiguous() for k, v in inputs.items()}
    outputs["sample"] = forward(model, inputs)
    maker = LoRAMaker(SEED + 7)

    def record(family, adapted):
        for strength in (1.0, 0.6):
            adapted.set_adapters(["lora"], weights=[strength])
            sample = forward(adapted, inputs)
            outputs[f"sample_{family}_{strength}"] = sample
            change = ((sample - outputs["sample"]).norm() / outputs["sample"].norm()).item()
            print(f"{family} at {strength}: moves the output by {change:.3f} (relative)")

    for family, (tensors, dtype) in make_files(config, maker).items():
        stored = {k: (v.to(dtype) if k.endswith(".weight") else v).contiguous() for k, v in tensors.items()}
        path = os.path.join(FIXTURES, f"lora-{family}.safetensors")
        save_file(stored, path)
        state_dict, alphas = FluxPipeline.lora_state_dict({k: v.clone() for k, v in tensors.items()}, return_alphas=True)
        # diffusers' kohya converter leaves the modules outside the blocks (x_embedder, norm_out, proj_out, the
        # embedders) without the `transformer.` prefix, so load_lora_into_transformer would silently drop them.
        state_dict = {(k if k.startswith("transformer.") else f"transformer.{k}"): v for k, v in state_dict.items()}
        # It also copies final_layer.{linear, adaLN_modulation.1} without their alpha / rank (every other module gets
        # it): apply it, as kohya's sd-scripts and every other module here do.
        for key, alpha in tensors.items():
            if key.endswith(".alpha") and "final_layer" in key:
                module = "transformer.norm_out.linear" if "adaLN" in key else "transformer.proj_out"
                rank = tensors[key[:-len("alpha")] + "lora_down.weight"].shape[0]
                state_dict[f"{module}.lora_B.weight"] = state_dict[f"{module}.lora_B.weight"] * (alpha.item() / rank)
        adapted = copy.deepcopy(model)
        FluxPipeline.load_lora_into_transformer(state_dict, alphas, adapted, adapter_name="lora")
        record(family, adapted)
        print(f"  wrote {path} ({os.path.getsize(path)} bytes)")

    with tempfile.TemporaryDirectory() as folder:
        adapted, saved = peft_file(model, maker, folder)
        path = os.path.join(FIXTURES, "lora-peft.safetensors")
        with open(saved, "rb") as source, open(path, "wb") as destination:
            destination.write(source.read())
        # The reference is the adapter as PEFT made it (scale lora_alpha / r = 0.5): diffusers' load_lora_adapter
        # (prefix=None) reloads this file with scale 1, ignoring the lora_alpha of its lora_adapter_metadata.
        record("peft", adapted)
        print(f"  wrote {path} ({os.path.getsize(path)} bytes)")

    metadata = {"config": json.dumps(dict(model.config), default=list), "weights": json.dumps(weight_spec), "seed": str(SEED),
                "generator": "scripts/parity/flux_lora_reference.py", "torch": torch.__version__, "diffusers": diffusers.__version__}
    path = os.path.join(FIXTURES, "lora-outputs.safetensors")
    save_file(outputs, path, metadata=metadata)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
