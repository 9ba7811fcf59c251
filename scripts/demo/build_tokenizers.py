"""Builds the flux-shapes tokenizers from the caption vocabulary (research/diffusion-architectures.md §5.3).

Writes OUT/tokenizer (CLIP-style byte-level BPE with `</w>`) and OUT/tokenizer_2 (T5-style Unigram with Metaspace),
each as tokenizer.json + tokenizer_config.json, trained with `tokenizers` on captions from scenes.py. The trainers
are not bit-for-bit deterministic across runs, so the shipped model keeps the files it was trained with.
"""

import argparse
import collections
import json
import math
import os
import random
import string

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, Unigram
from tokenizers.trainers import BpeTrainer

import scenes


def caption_corpus(count, seed):
    rng = random.Random(seed)
    return [scenes.caption(scenes.sample_scene(rng)) for _ in range(count)]


def build_clip(corpus, folder):
    clip = Tokenizer(BPE(unk_token="<|endoftext|>", continuing_subword_prefix="", end_of_word_suffix="</w>",
                         fuse_unk=False))
    clip.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                            normalizers.Lowercase()])
    clip.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(
        r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    clip.decoder = decoders.ByteLevel()
    clip.train_from_iterator(corpus, BpeTrainer(
        vocab_size=512, special_tokens=["<|startoftext|>", "<|endoftext|>"], end_of_word_suffix="</w>",
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    bos, eos = clip.token_to_id("<|startoftext|>"), clip.token_to_id("<|endoftext|>")
    clip.post_processor = processors.RobertaProcessing(("<|endoftext|>", eos), ("<|startoftext|>", bos),
                                                       trim_offsets=False, add_prefix_space=False)
    os.makedirs(folder, exist_ok=True)
    clip.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "CLIPTokenizer", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "model_max_length": 77}, f, indent=1)
    return clip.get_vocab_size(), bos, eos


def build_t5(corpus, folder):
    """Unigram over the corpus' words: one `▁word` piece each (score = log frequency), plus `▁` and the single
    characters a-z, 0-9 and basic punctuation at a low score, so text outside the grammar still tokenizes.
    (UnigramTrainer prunes a vocabulary this small down to characters, so the pieces are set directly.)"""
    counts = collections.Counter(word for line in corpus for word in line.split())
    total = sum(counts.values())
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("▁" + word, math.log(n / total)) for word, n in sorted(counts.items())]
    known = {piece for piece, _ in pieces}
    pieces += [(c, -20.0) for c in ["▁"] + list(string.ascii_lowercase + string.ascii_uppercase + string.digits
                                              + string.punctuation) if c not in known]
    t5 = Tokenizer(Unigram(pieces, unk_id=2, byte_fallback=False))
    t5.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    t5.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    t5.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                      special_tokens=[("</s>", t5.token_to_id("</s>"))])
    os.makedirs(folder, exist_ok=True)
    t5.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                   "extra_ids": 0, "model_max_length": 512}, f, indent=1)
    return t5.get_vocab_size()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder that receives tokenizer/ and tokenizer_2/")
    parser.add_argument("--captions", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    corpus = caption_corpus(args.captions, args.seed) + scenes.load_heldout()
    clip_vocab, bos, eos = build_clip(corpus, os.path.join(args.out, "tokenizer"))
    t5_vocab = build_t5(corpus, os.path.join(args.out, "tokenizer_2"))
    print(f"CLIP BPE: {clip_vocab} tokens (bos {bos}, eos {eos}); T5 Unigram: {t5_vocab} tokens")


if __name__ == "__main__":
    main()
