#!/usr/bin/env python3
"""Builds the synthetic tokenizer fixtures of Tests/PipelinesTests and the ids Python gives for a corpus of hard strings.

Four small tokenizers, one per family the pipelines need (research/diffusion-architectures.md §5):
  clip  - byte-level BPE with `</w>`, NFC + whitespace + lowercase normalizer, CLIP split regex, BOS/EOS (FLUX `tokenizer`)
  t5    - SentencePiece Unigram, Precompiled charsmap normalizer, WhitespaceSplit + Metaspace, `$A </s>` (FLUX `tokenizer_2`)
  qwen  - byte-level BPE, Qwen split regex, no special tokens added (Z-Image / Qwen-Image text encoders)
  gemma - SentencePiece-style BPE with byte fallback and fused unk, `<bos> $A`, left padding (SANA)

Each is trained with the `tokenizers` library on a small corpus, loaded through its transformers class (transformers 5
rebuilds normalizer / pre-tokenizer / decoder in Python, so the JSON written is `tok.backend_tokenizer`, the pipeline
transformers really runs), and then encoded:
  ids      = backend.encode(text).ids                      (special tokens added, no truncation or padding)
  padded   = tok(text, padding="max_length", max_length=L, truncation=True).input_ids, for each L
  decoded  = backend.decode(ids, skip_special_tokens=True)
The two paths are checked against each other here, so a fixture never records a transformers-only quirk unknowingly.

The T5 charsmap is not the real nmt_nfkc one (240 kB, too large to commit): SentencePiece compiles a small rule table
(full-width ASCII, ligatures, circled digits, a decomposed accent, a deletion, an emoji) into the same Darts-clone
format, which exercises the same trie walk and grapheme handling.

The trainers are not deterministic (hash-map order), so a rerun writes different but equally valid fixtures.

Run with the reference venv (tokenizers, transformers, sentencepiece):
  /work/pyref/bin/python scripts/parity/pipeline_tokenizer_fixtures.py
"""
import json
import os
import sys
import tempfile

import sentencepiece as spm
import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, Unigram
from tokenizers.trainers import BpeTrainer, UnigramTrainer
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "PipelinesTests", "Fixtures", "tokenizers")

TRAINING = [
    "a photo of a cat holding a sign that says hello world",
    "portrait photo, café 2024! A beautiful landscape with mountains and a lake at sunset",
    "an astronaut riding a horse on the moon, highly detailed, 8k, trending on artstation",
    "Ein Foto von einer Katze. Une photo d'un chat. Una foto de un gato. Über straße",
    "東京の夜景 城市夜景 서울의 밤 — neon lights, rain, reflections",
    "she's here, they're gone, we've won, I'm fine, you'll see, he'd go, don't",
    "numbers 0123456789 and symbols #@$%^&*()[]{}<>/\\|~`+=_-",
]
TRAINING = TRAINING * 30

LONG = (
    "A breathtaking panoramic view of an ancient city built into the cliffs of a vast canyon, with intricate stone "
    "bridges, hanging gardens, waterfalls cascading into turquoise pools, hot air balloons drifting in a golden sky, "
    "merchants in colorful robes, lanterns glowing along winding staircases, birds circling the towers, "
) * 12

CORPUS = [
    "",
    " ",
    "a photo of a cat",
    "A PHOTO OF A CAT holding a sign that says \"Hello, World!\"",
    "  leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nand\u000bvertical\u000cfeeds",
    "runs     of      spaces and \u00a0nbsp\u3000ideographic\u2028line\u2029para\u0085nel",
    "accents: café naïve résumé Ångström",
    "decomposed: cafe\u0301 A\u030angstro\u0308m",
    "Straße İstanbul ΣΊΣΥΦΟΣ ǅ ﬁ ﬂ",
    "full width: Ｈｅｌｌｏ，ｗｏｒｌｄ！ ①②③ ½",
    "CJK: 東京の夜景 城市夜景 서울의 밤 漢字",
    "emoji: 😀 👍🏽 👨‍👩‍👧 🇯🇵 ❤️ 🎉🎉🎉",
    "control: a\u0000b\u0007c\u001bd\u007fe\u200bf\u200dg\ufeffh\ufffd",
    "RTL: مرحبا بالعالم שלום עולם",
    "Devanagari: नमस्ते दुनिया",
    "contractions: she's they're we've I'm you'll he'd don't SHE'S I'LL",
    "numbers 0123456789 3.14159 1,000,000 ١٢٣",
    "symbols #@$%^&*()[]{}<>/\\|~`+=_- ... !!! ???",
    "special tokens inline: <|startoftext|> a <|endoftext|> b </s> c <pad> d <bos> e",
    "<|endoftext|><|endoftext|>",
    "</s></s>",
    "ligature with mark: ﬁ\u0301 and ①\u0301\u0301 and e\u0301\u0301",
    "mixed\u3000full-width\uff01and half-width!",
    "lone mark: \u0301a",
    "zero width: a\u200cb\u200dc",
    "trailing newline\n",
    "added: <tag> x  <tag>\t y cat cats concat bobcat (cat) Ångström A\u030angstro\u0308m 東京タワー<tag>",
    LONG,
    LONG + " 東京 😀 " + LONG,
]


def train_clip(path):
    tok = Tokenizer(BPE(unk_token="<|endoftext|>", continuing_subword_prefix="", end_of_word_suffix="</w>", fuse_unk=False))
    # The file's own pipeline is deliberately not the one CLIPTokenizer builds (no whitespace Replace, no special
    # tokens in the split regex, no post-processor or decoder): transformers 5 replaces it, and the Swift
    # `TransformersTokenizerClass.clip` rebuild must do the same from this file.
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.train_from_iterator(TRAINING, BpeTrainer(
        vocab_size=700, special_tokens=["<|startoftext|>", "<|endoftext|>"], end_of_word_suffix="</w>",
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.save(os.path.join(path, "tokenizer.json"))
    config = {"tokenizer_class": "CLIPTokenizer", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "model_max_length": 77}
    return config


# SentencePiece normalization rules: source code points TAB target code points (hex). Compiled into a Darts-clone trie.
T5_RULES = (
    [(f"{c:X}", f"{c - 0xFF01 + 0x21:X}") for c in range(0xFF01, 0xFF5F)]
    + [(f"{0x2460 + i:X}", f"{0x31 + i:X}") for i in range(9)]
    + [("FB00", "66 66"), ("FB01", "66 69"), ("FB02", "66 6C"), ("BD", "31 2044 32"), ("2126", "3A9"),
       ("A0", "20"), ("3000", "20"), ("9", "20"), ("A", "20"), ("D", "20"), ("2028", "20"),
       ("65 301", "E9"), ("41 30A", "C5"), ("1F600", "3A 29"), ("200B", "")]
)


def t5_charsmap(tmp):
    rules = os.path.join(tmp, "rules.tsv")
    with open(rules, "w") as f:
        for source, target in T5_RULES:
            f.write(f"{source}\t{target}\n")
    text = os.path.join(tmp, "spm.txt")
    with open(text, "w") as f:
        f.write("\n".join(["hello world, a photo of a cat"] * 20))
    # Only the compiled charsmap of this model is used; its vocabulary is thrown away.
    spm.SentencePieceTrainer.train(input=text, model_prefix=os.path.join(tmp, "spm"), vocab_size=30,
                                   hard_vocab_limit=False, model_type="unigram", normalization_rule_tsv=rules,
                                   minloglevel=2)
    data = open(os.path.join(tmp, "spm.model"), "rb").read()
    # ModelProto field 3 = NormalizerSpec; NormalizerSpec field 2 = precompiled_charsmap (protobuf wire format).
    spec = protobuf_field(data, 3)
    return protobuf_field(spec, 2)


def protobuf_field(message, wanted):
    def varint(i):
        value, shift = 0, 0
        while True:
            byte = message[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, i
    i = 0
    while i < len(message):
        key, i = varint(i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = varint(i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            length, i = varint(i)
            if field == wanted:
                return message[i:i + length]
            i += length
        else:
            raise ValueError(f"unexpected wire type {wire}")
    raise ValueError(f"field {wanted} not found")


def train_t5(path, tmp):
    tok = Tokenizer(Unigram())
    # The layout of older converted T5 files (Precompiled + Replace, Metaspace alone, no post-processor), which
    # transformers 5's T5Tokenizer replaces by Precompiled / WhitespaceSplit + Metaspace / "$A </s>".
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(t5_charsmap(tmp)), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.train_from_iterator(TRAINING, UnigramTrainer(
        vocab_size=400, special_tokens=["<pad>", "</s>", "<unk>", "<extra_id_1>", "<extra_id_0>"],
        unk_token="<unk>", show_progress=False))
    tok.save(os.path.join(path, "tokenizer.json"))
    return {"tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
            "extra_ids": 2, "additional_special_tokens": ["<extra_id_0>", "<extra_id_1>"], "model_max_length": 512}


def train_qwen(path):
    tok = Tokenizer(BPE(byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(
            r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""),
            behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TRAINING, BpeTrainer(
        vocab_size=700, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    # Non-special added tokens with every matching option, to test the added-vocabulary split.
    tok.add_tokens([
        AddedToken("Ångström", normalized=True),
        AddedToken("<tag>", lstrip=True, rstrip=True, normalized=False),
        AddedToken("cat", single_word=True, normalized=True),
        AddedToken("東京", normalized=False),
    ])
    tok.save(os.path.join(path, "tokenizer.json"))
    return {"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
            "unk_token": None, "bos_token": None, "model_max_length": 32768}


def train_gemma(path):
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.train_from_iterator(TRAINING, BpeTrainer(
        vocab_size=700, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + byte_tokens,
        show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
    tok.save(os.path.join(path, "tokenizer.json"))
    return {"tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>",
            "pad_token": "<pad>", "mask_token": "<mask>", "add_bos_token": True, "add_eos_token": False,
            "model_max_length": 300}


PADDED_LENGTHS = {"clip": [77], "t5": [256, 512], "qwen": [64], "gemma": [64]}


def build(name, folder, config):
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)
    tok = AutoTokenizer.from_pretrained(folder)
    assert type(tok).__name__ == config["tokenizer_class"], type(tok).__name__
    backend = tok.backend_tokenizer
    json_text = backend.to_str()
    # Reload the JSON exactly as the Swift tests will read it, and encode through that.
    raw = Tokenizer.from_str(json_text)
    cases = []
    for text in CORPUS:
        ids = raw.encode(text).ids
        assert ids == backend.encode(text).ids, (name, text)
        cases.append({"ids": ids, "padded": {}, "decoded": raw.decode(ids, skip_special_tokens=True)})
    # Calling `tok` leaves truncation and padding switched on in its backend, so this comes after the raw encodes.
    for text, case in zip(CORPUS, cases):
        for length in PADDED_LENGTHS[name]:
            padded = tok(text, padding="max_length", max_length=length, truncation=True)["input_ids"]
            case["padded"][str(length)] = padded
    pad_id = tok.pad_token_id
    expected = {
        "tokenizer": name,
        "versions": {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__},
        "pad_id": pad_id,
        "padding_side": tok.padding_side,
        "cases": cases,
    }
    with open(os.path.join(OUT, f"{name}.tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(json_text)
    with open(os.path.join(OUT, f"{name}.tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    if name in ("clip", "t5"):
        # The file as written, before transformers rebuilt its pipeline; it must tokenize differently on its own.
        with open(os.path.join(folder, "tokenizer.json"), encoding="utf-8") as f:
            original = f.read()
        as_written = Tokenizer.from_str(original)
        assert any(as_written.encode(text).ids != case["ids"] for text, case in zip(CORPUS, cases)), name
        with open(os.path.join(OUT, f"{name}.original.tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(original)
    with open(os.path.join(OUT, f"{name}.expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=True, separators=(",", ":"))
    print(f"{name}: {len(json_text)} bytes of tokenizer.json, vocab {raw.get_vocab_size()}, "
          f"padding {tok.padding_side}, pad id {pad_id}, longest {max(len(c['ids']) for c in cases)} ids")


def short_corpus():
    return [text for text in CORPUS if len(text) < 200]


def variant_tokenizers(trained):
    """Tokenizers that swap in every other supported component, built on the four trained models."""
    variants = {}

    t5 = Tokenizer.from_str(trained["t5"])
    t5.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Strip(left=True, right=True),
                                          normalizers.Replace(Regex(" {2,}"), "\u2581")])
    t5.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    variants["unigram_nfkc_strip_metaspace_first"] = t5

    t5 = Tokenizer.from_str(trained["t5"])
    vocab = json.loads(trained["t5"])["model"]["vocab"] + [[f"<0x{b:02X}>", -20.0] for b in range(256)]
    t5.model = Unigram([tuple(entry) for entry in vocab], unk_id=2, byte_fallback=True)
    t5.normalizer = normalizers.Sequence([normalizers.Nmt(), normalizers.NFKD(), normalizers.StripAccents()])
    t5.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never", split=True)
    # (tokenizers' Strip decoder panics on an empty token, so it runs first, on the non-empty pieces.)
    t5.decoder = decoders.Sequence([decoders.Strip("\u2581", 1, 0),
                                    decoders.Metaspace(replacement="\u2581", prepend_scheme="never"),
                                    decoders.ByteFallback(), decoders.Fuse()])
    variants["unigram_byte_fallback_nmt_nfkd"] = t5

    qwen = Tokenizer.from_str(trained["qwen"])
    qwen.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(), normalizers.Prepend("  ")])
    qwen.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    qwen.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=True),
                                               processors.BertProcessing(("<|im_end|>", 2), ("<|im_start|>", 1))])
    variants["bytelevel_gpt2_prefix_space"] = qwen

    clip = json.loads(trained["clip"])
    clip["model"]["merges"] = [" ".join(pair) for pair in clip["model"]["merges"]]
    clip = Tokenizer.from_str(json.dumps(clip))
    clip.decoder = decoders.BPEDecoder(suffix="</w>")
    clip.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}+"), behavior="contiguous"),
        pre_tokenizers.Split("o", behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"[aeiu]"), behavior="merged_with_previous", invert=True),
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    variants["bpe_legacy_merges_split_behaviors"] = clip

    gemma = Tokenizer.from_str(trained["gemma"])
    gemma_json = json.loads(gemma.to_str())
    gemma_json["model"]["ignore_merges"] = True
    gemma_json["model"]["fuse_unk"] = False
    gemma_json["model"]["byte_fallback"] = False
    gemma = Tokenizer.from_str(json.dumps(gemma_json))
    gemma.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+"), behavior="isolated")
    gemma.post_processor = processors.TemplateProcessing(
        single="<bos> <bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 1)])
    variants["bpe_ignore_merges_unfused_unk"] = gemma

    trainer = BpeTrainer(vocab_size=300, continuing_subword_prefix="##", show_progress=False,
                         special_tokens=["[UNK]", "[CLS]", "[SEP]"])
    wordpiece_like = Tokenizer(BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
    wordpiece_like.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    wordpiece_like.train_from_iterator(TRAINING, trainer)
    wordpiece_like.post_processor = processors.RobertaProcessing(("[SEP]", 2), ("[CLS]", 1))
    wordpiece_like.add_special_tokens([AddedToken("[MASK]", lstrip=True, single_word=True)])
    variants["bpe_continuing_subword_prefix"] = wordpiece_like
    return variants


def write_variants(trained):
    corpus = short_corpus()
    entries = []
    for name, tok in variant_tokenizers(trained).items():
        cases = []
        for text in corpus:
            ids = tok.encode(text).ids
            cases.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True)})
        entries.append({"name": name, "tokenizer": json.loads(tok.to_str()), "cases": cases})
    with open(os.path.join(OUT, "variants.json"), "w", encoding="utf-8") as f:
        json.dump({"corpus": corpus, "variants": entries}, f, ensure_ascii=True, separators=(",", ":"))
    print(f"variants: {len(entries)} tokenizers on {len(corpus)} strings")


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(CORPUS, f, ensure_ascii=True, indent=0)
    with tempfile.TemporaryDirectory() as tmp:
        for name, train in [("clip", train_clip), ("t5", lambda p: train_t5(p, tmp)), ("qwen", train_qwen),
                            ("gemma", train_gemma)]:
            folder = os.path.join(tmp, name)
            os.makedirs(folder)
            build(name, folder, train(folder))
    trained = {}
    for name in ["clip", "t5", "qwen", "gemma"]:
        with open(os.path.join(OUT, f"{name}.tokenizer.json"), encoding="utf-8") as f:
            trained[name] = f.read()
    write_variants(trained)
    return 0


if __name__ == "__main__":
    sys.exit(main())
