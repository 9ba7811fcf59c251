"""Reference outputs for the Swift CLIP text model and T5 encoder (Sources/Pipelines/TextEncoders).

Builds small random-weight transformers CLIPTextModel and T5EncoderModel (fp32, eval mode, constant parameters
perturbed so LayerNorm weights/biases are not 1/0), runs them the way FluxPipeline does (no attention mask), and
writes one fixture per model:

  Tests/PipelinesTests/Fixtures/textenc-clip.safetensors
    metadata "config": the model's config.json text; tensors: every state_dict weight (transformers 5 names, f32),
    input_ids [2, S] (i64), last_hidden_state, pooler_output (config eos_token_id = EOS),
    pooler_output_legacy (same weights, config eos_token_id = 2: the argmax-of-ids rule).
  Tests/PipelinesTests/Fixtures/textenc-t5.safetensors
    metadata "config"; weights; input_ids [2, S]; last_hidden_state;
    buckets_relative [401] (i64): the bidirectional bucket of relative positions -200..200 with 32 buckets and
    max distance 128 (FLUX's T5-XXL setting).

Run with the reference venv:  /work/pyref/bin/python scripts/parity/text_encoders_reference.py
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "PipelinesTests", "Fixtures")


def randomize_constant_params_(model, std=0.1):
    """Perturb parameters whose elements are all equal (LayerNorm weights 1, biases 0)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() and bool((p == p.flatten()[0]).all()):
                p.add_(torch.randn_like(p) * std)


def save(path, model, tensors):
    # encoder.embed_tokens.weight is tied to shared.weight; transformers 5 saves only shared.weight.
    weights = {k: v.detach().contiguous().float() for k, v in model.state_dict().items()
               if k != "encoder.embed_tokens.weight"}
    tensors = {**weights, **{k: v.detach().contiguous() for k, v in tensors.items()}}
    config = model.config.to_json_string(use_diff=False)
    save_file(tensors, path, metadata={"config": config})
    print(f"{path}: {os.path.getsize(path)} bytes, {len(weights)} weights")


def clip_fixture():
    torch.manual_seed(1)
    eos = 50  # not the largest id, as with a synthetic tokenizer: the two pooling rules can disagree
    config = CLIPTextConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=16, hidden_act="quick_gelu",
                            projection_dim=32, layer_norm_eps=1e-5, bos_token_id=1, eos_token_id=eos,
                            pad_token_id=eos)
    model = CLIPTextModel(config).eval()
    randomize_constant_params_(model)
    # Row 0: BOS, words, EOS at 5, EOS padding; EOS is the row's largest id, so both rules pick 5.
    # Row 1: EOS at 6, padding id 40, and id 61 at 2: the eos rule picks 6, the legacy argmax rule picks 2.
    ids = torch.tensor([
        [1, 5, 17, 33, 8, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50],
        [1, 9, 61, 12, 3, 7, 50, 40, 40, 40, 40, 40, 40, 40, 40, 40],
    ], dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=ids)
        model.config.eos_token_id = 2
        model.eos_token_id = 2
        legacy = model(input_ids=ids).pooler_output
        model.config.eos_token_id = eos
        model.eos_token_id = eos
    save(os.path.join(OUT, "textenc-clip.safetensors"), model, {
        "input_ids": ids, "last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output,
        "pooler_output_legacy": legacy})


def t5_fixture():
    torch.manual_seed(2)
    config = T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=32, relative_attention_max_distance=20,
                      feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6,
                      is_encoder_decoder=False, tie_word_embeddings=False)
    model = T5EncoderModel(config).eval()
    randomize_constant_params_(model)
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(2, 64, (2, 40), generator=generator)
    ids[0, 30] = 1  # EOS, then padding (pad id 0) that FLUX attends to: no mask.
    ids[0, 31:] = 0
    with torch.no_grad():
        out = model(input_ids=ids).last_hidden_state
    relative = torch.arange(-200, 201)
    from transformers.models.t5.modeling_t5 import T5Attention
    buckets = T5Attention._relative_position_bucket(relative, bidirectional=True, num_buckets=32, max_distance=128)
    save(os.path.join(OUT, "textenc-t5.safetensors"), model, {
        "input_ids": ids, "last_hidden_state": out, "buckets_relative": buckets.to(torch.long)})


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    clip_fixture()
    t5_fixture()
