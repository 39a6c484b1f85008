"""Tiny family checkpoints whose greedy answers depend on the page and the prompt (families.py's, re-drawn).

At transformers' initialisation (std 0.02) a 2-layer, 64-wide model writes the same token for any input, so a test
that its answer equals a reference could not tell a wrong image or prompt from the right one. Here every matrix is
drawn again with a larger spread (seeded), which makes answers differ between pages and between prompts, and the
vision towers are 64 wide, the narrowest that bitsandbytes' CPU 4-bit kernel takes (so `--quantize 4bit` loads
them). The output rows of the tokens a trained model never writes (image, vision and video placeholders: one
written would break the next step's image-token count) are zeroed, as build.py's `_quiet_rows` does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText

from tools.models.families import PARTS

WIDE_VISION = {
    "lighton_ocr": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "head_dim": 16},
    "paddleocr_vl": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4},
    "glm_ocr": {"hidden_size": 64, "intermediate_size": 128, "num_heads": 4},
}
PLACEHOLDER_MARKS = ("image", "vision", "video")


def build_lively_checkpoint(out_dir: Path, family: str, *, std: float = 0.5, seed: int = 0) -> Path:
    """`family`'s tiny checkpoint (one of WIDE_VISION) with 64-wide vision and weights drawn from N(0, std)."""
    config, processor, generation = PARTS[family]()
    for key, value in WIDE_VISION[family].items():
        setattr(config.vision_config, key, value)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    draw = torch.Generator().manual_seed(seed)
    tokenizer = processor.tokenizer
    placeholders = [i for token, i in tokenizer.get_vocab().items()
                    if any(mark in token.lower() for mark in PLACEHOLDER_MARKS)]
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() >= 2:
                weight.copy_(torch.randn(weight.shape, generator=draw) * std)
        model.get_output_embeddings().weight[placeholders] = 0.0
    model.generation_config = generation
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
