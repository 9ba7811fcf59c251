#!/usr/bin/env python3
"""End-to-end reference of diffusers' FluxPipeline on a tiny random-weight model, for the Swift FluxPipeline.

Builds a FLUX pipeline with the synthetic CLIP and T5 tokenizers of Tests/PipelinesTests/Fixtures/tokenizers (made
by pipeline_tokenizer_fixtures.py, research §5.3; the files as the trainer wrote them, so transformers rebuilds them
as it does for hub files), a tiny CLIP text model, T5 encoder, FLUX transformer (dev-like: guidance embedding) and
AutoencoderKL decoder, and the FLUX.1-dev scheduler config. Every parameter the pipeline reads comes from the
deterministic generator of seeded_weights.py (element i of tensor `name` is float32(offset + scale * (u_i / 2**23 - 1)),
u_i = splitmix64(fnv1a64(name) XOR seed, i) >> 40) with vae_reference.py's offsets and scales, so the Swift test
regenerates the weights bit for bit and no weights are committed.

It runs the pipeline in fp32 on the CPU (seed -> torch.Generator("cpu"), two prompts x two images, a few steps) and
writes Tests/PipelinesTests/Fixtures/pipeline-tiny.safetensors:
  metadata: `configs` (JSON: component -> its config.json / scheduler_config.json / model_index.json text),
            `weights` (JSON: component -> [[name, shape, offset, scale], ...]), `seed`, `settings` (JSON: prompts,
            images_per_prompt, steps, guidance, width, height, max_sequence_length), versions;
  tensors:  clip_ids, t5_ids (i64, one row per prompt), prompt_embeds, pooled_prompt_embeds (one row per image),
            noise (the packed initial latents), latents (packed, after the last step), image (the VAE output in
            [-1, 1], [B, 3, H, W]), image_u8 (the 8-bit images, [B, H, W, 3], from the pipeline's own PIL output);
            the same run with the whole pipeline in bf16 (`pipe.to(torch.bfloat16)`, as torch_dtype=bfloat16 loads
            it): noise_bf16, prompt_embeds_bf16, pooled_prompt_embeds_bf16, latents_bf16, image_bf16 (bf16 tensors).

With --folder DIR it also saves the pipeline (save_pretrained, with weights) and DIR/reference-<i>.png, for trying
`nunchaku generate --model DIR` by hand. With --gpu-sizes (and --folder, --output) the transformer has head dim 64,
which the CUDA attention takes, so the same comparison runs on the GPU: see compare_pipeline_tensors.py.

Run with the reference venv: /work/pyref/bin/python scripts/parity/flux_pipeline_reference.py [--folder /tmp/tiny-flux]
"""
import argparse
import copy
import json
import os
import shutil
import tempfile

os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")  # the randn kernel the Swift default (.avx2) reproduces

import numpy as np
import torch
import diffusers
import transformers
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5Tokenizer

from seeded_weights import generated_weight
from vae_reference import weight_rule  # norm weights around 1, biases small, matrices ~ sqrt(3 / fan_in)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "PipelinesTests", "Fixtures")
TOKENIZERS = os.path.join(FIXTURES, "tokenizers")

SETTINGS = dict(prompts=["a photo of a cat holding a sign that says hello world",
                         "Über straße: an astronaut riding a horse on the moon, 8k"],
                images_per_prompt=2, steps=3, guidance=3.5, width=48, height=32, max_sequence_length=16)


def fill(model, seed, skip=()):
    """Sets every parameter (except names starting with `skip`) from the generator; returns the spec."""
    spec = []
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(skip):
                continue
            shape = list(parameter.shape)
            offset, scale = weight_rule(name, shape)
            parameter.copy_(generated_weight(name, shape, offset, scale, seed))
            spec.append([name, shape, offset, scale])
    return spec


def tokenizer_folder(tmp, family, config_name):
    folder = os.path.join(tmp, family)
    os.makedirs(folder)
    shutil.copy(os.path.join(TOKENIZERS, f"{family}.original.tokenizer.json"), os.path.join(folder, "tokenizer.json"))
    shutil.copy(os.path.join(TOKENIZERS, f"{family}.tokenizer_config.json"), os.path.join(folder, config_name))
    return folder


# The transformer's sizes: the CPU fixture's, and a variant the CUDA kernels take (attention head dim 64 or 128).
TRANSFORMER_SIZES = {
    "cpu": dict(attention_head_dim=16, num_attention_heads=2, axes_dims_rope=(4, 6, 6)),
    "gpu": dict(attention_head_dim=64, num_attention_heads=1, axes_dims_rope=(8, 28, 28)),
}


def build(seed, tmp, sizes="cpu"):
    clip_tok = CLIPTokenizer.from_pretrained(tokenizer_folder(tmp, "clip", "tokenizer_config.json"))
    t5_tok = T5Tokenizer.from_pretrained(tokenizer_folder(tmp, "t5", "tokenizer_config.json"))
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(clip_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32, layer_norm_eps=1e-5,
        bos_token_id=clip_tok.bos_token_id, eos_token_id=clip_tok.eos_token_id,  # research §3 pitfall 6
        pad_token_id=clip_tok.pad_token_id)).eval()
    t5 = T5EncoderModel(T5Config(
        vocab_size=len(t5_tok), d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4, feed_forward_proj="gated-gelu",
        dropout_rate=0.0, is_encoder_decoder=False, tie_word_embeddings=False)).eval()
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=True, **TRANSFORMER_SIZES[sizes]).eval()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8, 8, 16, 16], layers_per_block=1,
        latent_channels=16, norm_num_groups=4, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
        use_post_quant_conv=False).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096)
    weights = {"text_encoder": fill(clip, seed), "text_encoder_2": fill(t5, seed),
               "transformer": fill(transformer, seed), "vae": fill(vae, seed, skip=("encoder.", "quant_conv."))}
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=clip_tok, text_encoder_2=t5,
                        tokenizer_2=t5_tok, transformer=transformer)
    return pipe, weights


def configs_of(pipe, tmp):
    """The JSON files save_pretrained writes (model_index.json, each component's config)."""
    folder = os.path.join(tmp, "saved")
    pipe.save_pretrained(folder)
    names = {"model_index": "model_index.json", "scheduler": "scheduler/scheduler_config.json",
             "text_encoder": "text_encoder/config.json", "text_encoder_2": "text_encoder_2/config.json",
             "transformer": "transformer/config.json", "vae": "vae/config.json"}
    configs = {}
    for key, path in names.items():
        with open(os.path.join(folder, path), encoding="utf-8") as f:
            configs[key] = f.read()
    return configs, folder


def run_bf16(pipe, seed):
    """The stage tensors of the same run with every model in bf16."""
    s = SETTINGS
    batch = len(s["prompts"]) * s["images_per_prompt"]
    half = copy.deepcopy(pipe).to(torch.bfloat16)
    with torch.no_grad():
        prompt_embeds, pooled, _ = half.encode_prompt(prompt=s["prompts"], prompt_2=None,
                                                      num_images_per_prompt=s["images_per_prompt"],
                                                      max_sequence_length=s["max_sequence_length"])
        noise, _ = half.prepare_latents(batch, 16, s["height"], s["width"], prompt_embeds.dtype, torch.device("cpu"),
                                        torch.Generator("cpu").manual_seed(seed))
        latents = half(prompt=s["prompts"], generator=torch.Generator("cpu").manual_seed(seed), output_type="latent",
                       height=s["height"], width=s["width"], num_inference_steps=s["steps"],
                       guidance_scale=s["guidance"], max_sequence_length=s["max_sequence_length"],
                       num_images_per_prompt=s["images_per_prompt"]).images
        unpacked = half._unpack_latents(latents, s["height"], s["width"], half.vae_scale_factor)
        image = half.vae.decode(unpacked / half.vae.config.scaling_factor + half.vae.config.shift_factor,
                                return_dict=False)[0]
    return dict(noise_bf16=noise, prompt_embeds_bf16=prompt_embeds, pooled_prompt_embeds_bf16=pooled,
                latents_bf16=latents, image_bf16=image)


def run(pipe, seed):
    s = SETTINGS
    batch = len(s["prompts"]) * s["images_per_prompt"]
    common = dict(height=s["height"], width=s["width"], num_inference_steps=s["steps"], guidance_scale=s["guidance"],
                  max_sequence_length=s["max_sequence_length"], num_images_per_prompt=s["images_per_prompt"])
    with torch.no_grad():
        prompt_embeds, pooled, _ = pipe.encode_prompt(prompt=s["prompts"], prompt_2=None,
                                                      num_images_per_prompt=s["images_per_prompt"],
                                                      max_sequence_length=s["max_sequence_length"])
        noise, _ = pipe.prepare_latents(batch, 16, s["height"], s["width"], prompt_embeds.dtype, torch.device("cpu"),
                                        torch.Generator("cpu").manual_seed(seed))
        latents = pipe(prompt=s["prompts"], generator=torch.Generator("cpu").manual_seed(seed), output_type="latent",
                       **common).images
        unpacked = pipe._unpack_latents(latents, s["height"], s["width"], pipe.vae_scale_factor)
        z = unpacked / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        image = pipe.vae.decode(z, return_dict=False)[0]
        pil = pipe(prompt=s["prompts"], generator=torch.Generator("cpu").manual_seed(seed), output_type="pil",
                   **common).images
    image_u8 = np.stack([np.asarray(p) for p in pil])
    # The manual decode above must be what the pipeline itself did.
    manual = pipe.image_processor.postprocess(image, output_type="pil")
    assert all((np.asarray(a) == np.asarray(b)).all() for a, b in zip(manual, pil)), "manual decode differs"
    clip_ids = pipe.tokenizer(s["prompts"], padding="max_length", max_length=77, truncation=True,
                              return_tensors="pt").input_ids
    t5_ids = pipe.tokenizer_2(s["prompts"], padding="max_length", max_length=s["max_sequence_length"], truncation=True,
                              return_tensors="pt").input_ids
    return dict(clip_ids=clip_ids, t5_ids=t5_ids, prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled,
                noise=noise, latents=latents, image=image, image_u8=torch.from_numpy(image_u8)), pil


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--folder", help="also save the pipeline (with weights) and the reference PNGs here")
    parser.add_argument("--gpu-sizes", action="store_true",
                        help="a transformer the CUDA kernels take (head dim 64) and the tensors in --output, not the "
                             "committed fixture: for `nunchaku generate --device cuda --save-tensors` on the GPU "
                             "machine, compared by compare_pipeline_tensors.py")
    parser.add_argument("--output", help="where to write the reference tensors (default: the committed fixture)")
    args = parser.parse_args()
    if args.gpu_sizes and not (args.folder and args.output):
        parser.error("--gpu-sizes needs --folder and --output (the committed fixture is the CPU-sized model)")
    torch.set_num_threads(os.cpu_count() or 1)
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        pipe, weights = build(args.seed, tmp, sizes="gpu" if args.gpu_sizes else "cpu")
        configs, saved = configs_of(pipe, tmp)
        tensors, pil = run(pipe, args.seed)
        tensors.update(run_bf16(pipe, args.seed))
        if args.folder:
            shutil.rmtree(args.folder, ignore_errors=True)
            shutil.copytree(saved, args.folder)
            for index, picture in enumerate(pil):
                picture.save(os.path.join(args.folder, f"reference-{index + 1}.png"))
            print(f"saved the pipeline and {len(pil)} reference PNGs in {args.folder}")
    for name, tensor in tensors.items():
        print(f"{name}: {tuple(tensor.shape)} {tensor.dtype}")
    metadata = {"configs": json.dumps(configs), "weights": json.dumps(weights), "seed": str(args.seed),
                "settings": json.dumps(SETTINGS), "generator": "scripts/parity/flux_pipeline_reference.py",
                "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__}
    path = args.output or os.path.join(FIXTURES, "pipeline-tiny.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
