"""Trains the flux-shapes demo model (FLUX.1 architecture, reduced) and exports a diffusers pipeline folder.

Stages, all seeded (fixed step counts; `--max-seconds-*` are safety caps that the log reports if they cut a stage):
1. render the training scenes (scenes.py, held-out prompts excluded) in parallel;
2. train a small AutoencoderKL (16 latent channels, 8x downsampling) on them; fit scaling_factor / shift_factor
   so the latents have mean 0 and std 1, and write them into its config;
3. train FluxTransformer2DModel + CLIPTextModel + T5EncoderModel jointly with rectified flow matching exactly as
   FluxPipeline samples: packed 2x2 latents, image ids (0, row, col), text ids 0, T5 padded to 256, CLIP to 77,
   no attention masks, timestep = sigma, sigma shifted with FluxPipeline's dynamic mu for 64 image tokens,
   target = noise - x0 (the Euler step x += (sigma_next - sigma) * v walks from noise to data);
4. export transformer (BF16), text encoders, VAE, tokenizers, scheduler and model_index.json, then reload the folder
   with diffusers' FluxPipeline and sample the held-out prompts as a check (samples.png).

Usage: python train.py --tokenizers TOKDIR --out OUT [--device cuda] [--scenes 60000] ...
"""

import argparse
import json
import math
import multiprocessing
import os
import random
import shutil
import time

import numpy as np
import torch
import torch.nn.functional as F

import scenes

T5_LENGTH = 256
CLIP_LENGTH = 77


def log(message, file=None):
    line = f"[{time.strftime('%H:%M:%S')}] {message}"
    print(line, flush=True)
    if file is not None:
        file.write(line + "\n")
        file.flush()


def render_chunk(job):
    count, seed = job
    return scenes.training_scenes(count, seed, scenes.load_heldout())


def render_all(count, seed, workers):
    chunks = [(count // workers + (i < count % workers), seed * 1000 + i) for i in range(workers)]
    with multiprocessing.Pool(workers) as pool:
        parts = pool.map(render_chunk, chunks)
    captions = [c for part in parts for c in part[0]]
    images = np.concatenate([part[1] for part in parts])
    return captions, images


def build_models(clip_vocab, clip_bos, clip_eos, t5_vocab):
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[32, 64, 128, 128],
                        layers_per_block=1, latent_channels=16, norm_num_groups=32, sample_size=128,
                        scaling_factor=1.0, shift_factor=0.0, use_quant_conv=False, use_post_quant_conv=False,
                        mid_block_add_attention=True)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=2, num_single_layers=4,
                                         attention_head_dim=64, num_attention_heads=4, joint_attention_dim=128,
                                         pooled_projection_dim=128, guidance_embeds=False,
                                         axes_dims_rope=(8, 28, 28))
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=clip_vocab, hidden_size=128, intermediate_size=256,
                                        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                                        hidden_act="quick_gelu", projection_dim=128, bos_token_id=clip_bos,
                                        eos_token_id=clip_eos, pad_token_id=clip_eos))
    t5 = T5EncoderModel(T5Config(vocab_size=t5_vocab, d_model=128, d_kv=32, d_ff=256, num_layers=2, num_heads=4,
                                 feed_forward_proj="gated-gelu", dropout_rate=0.0, is_encoder_decoder=False,
                                 tie_word_embeddings=False, relative_attention_num_buckets=32,
                                 relative_attention_max_distance=128))
    return vae, transformer, clip, t5


def to_unit(images_u8, device):
    """uint8 [B,H,W,3] -> float [B,3,H,W] in [-1, 1]."""
    x = torch.from_numpy(images_u8).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def train_vae(vae, images, args, device, logf):
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    gen = torch.Generator(device="cpu").manual_seed(args.seed + 1)
    start = time.time()
    for step in range(args.vae_steps):
        idx = torch.randint(0, len(images), (args.vae_batch,), generator=gen).numpy()
        x = to_unit(images[idx], device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            posterior = vae.encode(x).latent_dist
            z = posterior.sample()
            recon = vae.decode(z).sample
        rec = F.mse_loss(recon.float(), x) + 0.5 * F.l1_loss(recon.float(), x)
        kl = posterior.kl().mean() / (16 * 16 * 16)
        loss = rec + args.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = args.vae_lr * min(1.0, (step + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(
                math.pi * step / args.vae_steps)))
        opt.step()
        if step % 250 == 0 or step == args.vae_steps - 1:
            log(f"vae step {step:5d} rec {rec.item():.5f} kl {kl.item():.3f} ({time.time() - start:.0f} s)", logf)
        if time.time() - start > args.max_seconds_vae:
            log(f"vae: time cap reached at step {step} (not the configured {args.vae_steps})", logf)
            break
    vae.eval()


@torch.no_grad()
def encode_latents(vae, images, device, batch=512):
    out = []
    for i in range(0, len(images), batch):
        x = to_unit(images[i:i + batch], device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            out.append(vae.encode(x).latent_dist.mode().float())
    return torch.cat(out)


def pack(latents):
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def image_ids(h, w, device):
    ids = torch.zeros(h // 2, w // 2, 3, device=device)
    ids[..., 1] = torch.arange(h // 2, device=device)[:, None]
    ids[..., 2] = torch.arange(w // 2, device=device)[None, :]
    return ids.reshape(-1, 3)


def dynamic_mu(tokens):
    m = (1.15 - 0.5) / (4096 - 256)
    return tokens * m + (0.5 - 256 * m)


def train_flux(transformer, clip, t5, latents, clip_ids, t5_ids, args, device, logf):
    modules = [transformer, clip, t5]
    params = [p for m in modules for p in m.parameters()]
    ema = [p.detach().clone() for p in params]
    for m in modules:
        m.train()
    opt = torch.optim.AdamW(params, lr=args.flux_lr, weight_decay=0.01, betas=(0.9, 0.99))
    gen = torch.Generator(device=device).manual_seed(args.seed + 2)
    cpu_gen = torch.Generator(device="cpu").manual_seed(args.seed + 3)
    n, _, h, w = latents.shape
    img_ids = image_ids(h, w, device)
    txt_ids = torch.zeros(T5_LENGTH, 3, device=device)
    shift = math.exp(dynamic_mu((h // 2) * (w // 2)))
    start = time.time()
    curve = []
    for step in range(args.flux_steps):
        idx = torch.randint(0, n, (args.flux_batch,), generator=cpu_gen).to(device)
        x0 = pack(latents[idx])
        noise = torch.randn(x0.shape, generator=gen, device=device)
        u = torch.sigmoid(torch.randn(args.flux_batch, generator=gen, device=device))
        sigma = shift / (shift + (1 / u - 1))
        xt = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda" and args.precision == "bf16"):
            pooled = clip(clip_ids[idx]).pooler_output
            prompt = t5(t5_ids[idx])[0]
            v = transformer(hidden_states=xt, encoder_hidden_states=prompt, pooled_projections=pooled,
                            timestep=sigma, img_ids=img_ids, txt_ids=txt_ids, return_dict=False)[0]
        loss = F.mse_loss(v.float(), noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        lr = args.flux_lr * min(1.0, (step + 1) / 300) * (0.05 + 0.95 * 0.5 * (1 + math.cos(
            math.pi * step / args.flux_steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - args.ema)
        if step % 10 == 0:
            curve.append(loss.item())
        if step % 250 == 0 or step == args.flux_steps - 1:
            log(f"flux step {step:5d} loss {loss.item():.4f} lr {lr:.2e} ({time.time() - start:.0f} s)", logf)
        if args.flux_stop_step and step + 1 >= args.flux_stop_step:
            log(f"flux: stopped after {step + 1} steps (--flux-stop-step)", logf)
            break
        if time.time() - start > args.max_seconds_flux:
            log(f"flux: time cap reached at step {step} (not the configured {args.flux_steps})", logf)
            break
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    for m in modules:
        m.eval()
    return curve


@torch.no_grad()
def write_calibration(folder, transformer, clip, t5, latents, clip_ids, t5_ids, seed, files=4, batch=4):
    """Forward-argument files (`nunchaku quantize --calibration-inputs`): training scenes noised to a spread of
    sigmas along the sampling path, with their text embeddings, in BF16."""
    from safetensors.torch import save_file
    os.makedirs(folder, exist_ok=True)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    device = latents.device
    _, _, h, w = latents.shape
    for i in range(files):
        idx = torch.randint(0, len(latents), (batch,), generator=gen).to(device)
        x0 = pack(latents[idx])
        noise = torch.randn(x0.shape, generator=gen).to(device)
        sigma = torch.linspace(1.0 - i / files, 1.0 - (i + 1) / files, batch + 1)[:batch].to(device).clamp(min=0.05)
        xt = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
        tensors = {"hidden_states": xt, "encoder_hidden_states": t5(t5_ids[idx])[0],
                   "pooled_projections": clip(clip_ids[idx]).pooler_output, "timestep": sigma,
                   "img_ids": image_ids(h, w, device), "txt_ids": torch.zeros(T5_LENGTH, 3, device=device)}
        save_file({k: v.float().to(torch.bfloat16).cpu().contiguous() for k, v in tensors.items()},
                  os.path.join(folder, f"inputs-{i}.safetensors"))


def export(out, vae, transformer, clip, t5, tokenizers_dir):
    from diffusers import FlowMatchEulerDiscreteScheduler
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    transformer.to(torch.bfloat16).save_pretrained(os.path.join(out, "transformer"))
    vae.to(torch.bfloat16).save_pretrained(os.path.join(out, "vae"))
    clip.to(torch.float32).save_pretrained(os.path.join(out, "text_encoder"))
    t5.to(torch.float32).save_pretrained(os.path.join(out, "text_encoder_2"))
    for name in ("tokenizer", "tokenizer_2"):
        shutil.copytree(os.path.join(tokenizers_dir, name), os.path.join(out, name))
    FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                    base_image_seq_len=256, max_image_seq_len=4096).save_pretrained(
        os.path.join(out, "scheduler"))
    import diffusers
    index = {"_class_name": "FluxPipeline", "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "T5Tokenizer"],
             "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
    shutil.copy(scenes.HELDOUT_FILE, os.path.join(out, "heldout_prompts.json"))


def sample_check(out, device, path, steps_list=(4, 8)):
    from diffusers import FluxPipeline
    from PIL import Image
    pipe = FluxPipeline.from_pretrained(out, torch_dtype=torch.bfloat16).to(device)
    prompts = ["a red circle on a blue background"] + scenes.load_heldout()[:7]
    rows = []
    for steps in steps_list:
        images = pipe(prompts, num_inference_steps=steps, guidance_scale=0.0, height=128, width=128,
                      max_sequence_length=T5_LENGTH, generator=torch.Generator("cpu").manual_seed(0)).images
        rows.append(np.concatenate([np.asarray(im) for im in images], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokenizers", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--log", default=None)
    p.add_argument("--samples", default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=20261121)
    p.add_argument("--scenes", type=int, default=60000)
    p.add_argument("--workers", type=int, default=max(1, min(16, os.cpu_count() or 1)))
    p.add_argument("--vae-steps", type=int, default=1800)
    p.add_argument("--vae-batch", type=int, default=64)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--vae-kl", type=float, default=1e-4)
    p.add_argument("--flux-steps", type=int, default=6000)
    p.add_argument("--flux-batch", type=int, default=128)
    p.add_argument("--flux-lr", type=float, default=6e-4)
    p.add_argument("--flux-stop-step", type=int, default=0,
                   help="stop after this many steps, keeping the schedule of --flux-steps (reproduces a capped run)")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                   help="FLUX stage: bf16 autocast, or fp32 (TF32 matmuls)")
    p.add_argument("--vae-cache", default=None, help="reuse the VAE trained into this file, or save it there")
    p.add_argument("--vae-from", default=None,
                   help="skip VAE training: start from the VAE of this exported folder (e.g. models/flux-shapes)")
    p.add_argument("--max-seconds-vae", type=float, default=70)
    p.add_argument("--max-seconds-flux", type=float, default=190)
    args = p.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    # The first H200 run died in the FLUX stage's first backward (CUBLAS_STATUS_EXECUTION_FAILED, an asynchronous
    # fault); attention then ran on cuDNN's SDPA backend. Use the flash / memory-efficient kernels instead.
    torch.backends.cuda.enable_cudnn_sdp(False)
    device = args.device
    logf = open(args.log, "w") if args.log else None
    log(f"args {vars(args)}", logf)

    from transformers import CLIPTokenizer, T5Tokenizer
    clip_tok = CLIPTokenizer.from_pretrained(os.path.join(args.tokenizers, "tokenizer"))
    t5_tok = T5Tokenizer.from_pretrained(os.path.join(args.tokenizers, "tokenizer_2"))

    captions, images = render_all(args.scenes, args.seed, args.workers)
    log(f"rendered {len(captions)} scenes, {len(set(captions))} distinct captions", logf)
    clip_ids = torch.tensor(clip_tok(captions, padding="max_length", max_length=CLIP_LENGTH,
                                     truncation=True).input_ids, device=device)
    t5_ids = torch.tensor(t5_tok(captions, padding="max_length", max_length=T5_LENGTH,
                                 truncation=True).input_ids, device=device)

    torch.manual_seed(args.seed)
    vae, transformer, clip, t5 = build_models(len(clip_tok), clip_tok.bos_token_id, clip_tok.eos_token_id,
                                              len(t5_tok))
    for m in (vae, transformer, clip, t5):
        m.to(device)
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in
              [("vae", vae), ("transformer", transformer), ("clip", clip), ("t5", t5)]}
    log(f"parameters {counts}", logf)

    if args.vae_from:
        from diffusers import AutoencoderKL
        trained = AutoencoderKL.from_pretrained(os.path.join(args.vae_from, "vae"), torch_dtype=torch.float32)
        vae.load_state_dict(trained.state_dict())
        vae.eval()
        log(f"vae loaded from {args.vae_from}", logf)
    elif args.vae_cache and os.path.exists(args.vae_cache):
        vae.load_state_dict(torch.load(args.vae_cache, map_location=device))
        vae.eval()
        log(f"vae loaded from {args.vae_cache}", logf)
    else:
        train_vae(vae, images, args, device, logf)
        if args.vae_cache:
            torch.save(vae.state_dict(), args.vae_cache)
    latents = encode_latents(vae, images, device)
    mean, std = latents.mean().item(), latents.std().item()
    vae.register_to_config(scaling_factor=1.0 / std, shift_factor=mean)
    latents = (latents - mean) / std
    log(f"latents mean {mean:.4f} std {std:.4f} -> scaling_factor {1 / std:.4f} shift_factor {mean:.4f}", logf)

    curve = train_flux(transformer, clip, t5, latents, clip_ids, t5_ids, args, device, logf)
    write_calibration(os.path.join(os.path.dirname(os.path.abspath(args.out)), "calibration"), transformer, clip, t5,
                      latents, clip_ids, t5_ids, args.seed + 4)
    export(args.out, vae, transformer, clip, t5, args.tokenizers)
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump({"args": vars(args), "parameters": counts, "loss_every_10_steps": curve,
                   "latent_mean": mean, "latent_std": std}, f)
    log(f"exported {args.out}", logf)
    if args.samples:
        sample_check(args.out, device, args.samples)
        log(f"samples written to {args.samples}", logf)


if __name__ == "__main__":
    main()
