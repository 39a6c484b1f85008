"""Build a tiny random-weight checkpoint (run from the repository root):

    python -m tools.models standin OUT_DIR [--cache DIR] [--no-check] [--real-text]  # SmolVLM-256M-Instruct stand-in
    python -m tools.models standin --family lighton_ocr OUT_DIR         # or paddleocr_vl, glm_ocr (standins.py)
    python -m tools.models granite-standin OUT_DIR                      # granite-docling-258M's sizes
    python -m tools.models learn-to-read OUT_DIR [--seed 0]             # the learn-to-read model
    python -m tools.models test OUT_DIR [--family idefics2]             # a test fixture (or an OCR family)

There is no model hub here, so benchmarks and `examples/run.sh` run on the stand-in:
the same Idefics3 architecture, sizes, processor settings, chat template and token ids
as the real checkpoint, with SmolLM2's real tokenizer (same compute and memory per
token; the answers are noise).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from tools.models.build import (
    DEFAULT_STANDIN_CACHE,
    build_granite_standin,
    build_learn_to_read,
    build_standin,
    build_test_checkpoint,
    with_real_language_model,
)
from tools.models.build import FAMILIES as IDEFICS_FAMILIES
from tools.models.families import FAMILIES as OCR_FAMILIES
from tools.models.families import build_family_checkpoint
from tools.models.standins import STANDINS


def reader_instructions() -> list[str]:
    """The texts the learn-to-read tokenizer merges into words: vlmcli's instructions and the receipts' questions."""
    from vlmcli.prompts import HANDWRITING_PROMPT, OCR_PROMPT

    return [OCR_PROMPT, HANDWRITING_PROMPT, "What is the total?", "What is the invoice number?", "What is the date?"]


def check_standin(out_dir: Path) -> None:
    """An A4 page must expand to 13 sub-images = 832 <image> tokens; generate 2 tokens."""
    from PIL import Image, ImageDraw

    page = Image.new("RGB", (1240, 1754), "white")  # A4 at 150 dpi
    for i, line in enumerate(["INVOICE 2024-0042", "Total due: 1,234.56 EUR", "Thank you."]):
        ImageDraw.Draw(page).text((120, 150 + 60 * i), line, fill="black")
    processor = AutoProcessor.from_pretrained(out_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Read this page."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, images=[[page]], return_tensors="pt")
    model = AutoModelForImageTextToText.from_pretrained(out_dir, dtype=torch.float32, use_safetensors=True)
    image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    print(f"A4 page: pixel_values {tuple(inputs['pixel_values'].shape)}, {image_tokens} <image> tokens, "
          f"{inputs['input_ids'].shape[1]} prompt tokens")
    assert inputs["pixel_values"].shape[1] == 13 and image_tokens == 832, "unexpected image split"
    started = time.perf_counter()
    out = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    print(f"generate(max_new_tokens=2) float32: {time.perf_counter() - started:.1f}s -> "
          f"{out[0, inputs['input_ids'].shape[1]:].tolist()}")


def check_family_standin(out_dir: Path, family: str) -> None:
    """An A4 page at 200 dpi must cost the real checkpoint's visual tokens; the card's recipe generates 2 tokens
    on the page at 50 dpi (seconds, where the 200 dpi page takes minutes on a CPU)."""
    from PIL import Image

    from tools.models.recipes import RECIPES, load
    from tools.models.standins import A4_PX, A4_VISUAL_TOKENS, a4_visual_tokens

    model, processor = load(out_dir)
    tokens = a4_visual_tokens(processor, processor.image_token_id)
    print(f"A4 page {A4_PX[0]}x{A4_PX[1]} px: {tokens} visual tokens")
    assert tokens == A4_VISUAL_TOKENS[family], f"expected {A4_VISUAL_TOKENS[family]}"
    started = time.perf_counter()
    small_page = Image.new("RGB", (A4_PX[0] // 4, A4_PX[1] // 4), "white")
    result = RECIPES[family](model, processor, small_page, max_new_tokens=2)
    print(f"{family} recipe, max_new_tokens=2, float32, A4 at 50 dpi: {time.perf_counter() - started:.1f}s -> "
          f"{result.token_ids}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.models", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=["standin", "granite-standin", "learn-to-read", "test"])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=DEFAULT_STANDIN_CACHE, help="standin: where the GGUF is kept")
    parser.add_argument("--no-check", action="store_true", help="standin: skip the A4 processing + generate check")
    parser.add_argument("--real-text", action="store_true",
                        help="standin: SmolLM2-135M-Instruct's weights (from the GGUF) as the language model")
    parser.add_argument("--family", choices=("smolvlm", *IDEFICS_FAMILIES, *OCR_FAMILIES), default=None,
                        help="test: the fixture's family (default idefics3); standin: smolvlm (default) or one of "
                             f"{', '.join(STANDINS)}")
    parser.add_argument("--longest-edge", type=int, default=512, help="learn-to-read: the processor's resolution")
    parser.add_argument("--patch-px", type=int, default=8, help="learn-to-read: vision patch size")
    parser.add_argument("--shuffle", type=int, default=2, help="learn-to-read: pixel-shuffle factor")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.recipe == "standin" and args.family in STANDINS:
        from tools.models.standins import build_family_standin

        out = build_family_standin(args.out_dir, args.family, args.cache, args.seed)
    elif args.recipe == "standin":
        if args.family not in (None, "smolvlm"):
            parser.error(f"standin --family: smolvlm or one of {', '.join(STANDINS)}")
        out = build_standin(args.out_dir, args.cache, args.seed)
        if args.real_text:
            out = with_real_language_model(out, args.cache)
    elif args.recipe == "granite-standin":
        out = build_granite_standin(args.out_dir, args.seed)
    elif args.recipe == "learn-to-read":
        out = build_learn_to_read(args.out_dir, reader_instructions(), seed=args.seed,
                                  longest_edge_px=args.longest_edge, patch_px=args.patch_px, shuffle=args.shuffle)
    elif args.family in OCR_FAMILIES:
        out = build_family_checkpoint(args.out_dir, args.family, seed=args.seed)
    else:
        out = build_test_checkpoint(args.out_dir, args.family or "idefics3", seed=args.seed)
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    parameters = sum(p.numel() for p in AutoModelForImageTextToText.from_pretrained(out).parameters())
    print(f"built {out} in {time.perf_counter() - started:.1f}s: {parameters:,} parameters, "
          f"{size / 2**20:.0f} MiB on disk")
    if args.recipe == "standin" and not args.no_check and args.family in STANDINS:
        check_family_standin(out, args.family)
    elif args.recipe == "standin" and not args.no_check:
        check_standin(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
