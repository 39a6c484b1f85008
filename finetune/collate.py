"""Examples → model inputs with labels (torch, transformers processor).

Labels are -100 everywhere except the assistant answers: prompt, padding and
image tokens never count in the loss. Nothing is truncated: an example longer
than max_length is reported by `validate` instead, since cutting through image
tokens breaks the model's image/token alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from finetune.data import Example, Problem
from vlmcli.config import PdfSpec
from vlmcli.documents import load_page, page_refs
from vlmcli.errors import VlmcliError
from vlmcli.splitting import pad_to_min_side

IGNORE_INDEX = -100


def load_images(example: Example, max_input_px: int, pdf: PdfSpec) -> list[Image.Image]:
    """The example's pages, as vlmcli shows a page to the model (without bands: targets cover whole pages)."""
    pages = []
    for image in example.images:
        ref = page_refs(image.path, str(image.page_number), pdf)[0]
        pages.append(pad_to_min_side(load_page(ref, max_input_px, bands=False, pdf_spec=pdf)))
    return pages


def encode(example: Example, images: list[Image.Image], processor: Any, image_token_id: int) -> dict:
    """One example as tensors (batch of 1), with answer-only labels."""
    tokenizer = processor.tokenizer
    messages = list(example.messages)
    full_text = processor.apply_chat_template(messages, add_generation_prompt=False)
    inputs = processor(text=[full_text], images=[images] if images else None, return_tensors="pt")
    input_ids = inputs["input_ids"][0]
    # Images expand each <image> into many tokens, all before the first answer, so
    # positions after them shift by one constant: measured on the full text.
    shift = len(input_ids) - len(tokenizer(full_text)["input_ids"])
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = _length(processor, messages[:index], add_generation_prompt=True) + shift
        end = _length(processor, messages[: index + 1], add_generation_prompt=False) + shift
        labels[start:end] = input_ids[start:end]
    labels[input_ids == image_token_id] = IGNORE_INDEX
    encoded = {key: value[0] for key, value in inputs.items()}
    encoded["labels"] = labels
    return encoded


def validate(examples: list[Example], processor: Any, image_token_id: int, max_input_px: int, pdf: PdfSpec,
             max_length: int) -> tuple[list[Example], list[Problem]]:
    """Load and encode every example once; report unreadable images and over-long sequences by line."""
    good, problems = [], []
    for example in examples:
        try:
            encoded = encode(example, load_images(example, max_input_px, pdf), processor, image_token_id)
        except VlmcliError as error:
            problems.append(Problem(example.line_number, error.message))
            continue
        length = len(encoded["input_ids"])
        if length > max_length:
            image_tokens = int((encoded["input_ids"] == image_token_id).sum())
            problems.append(Problem(example.line_number,
                                    f"{length} tokens ({image_tokens} of them image tokens) exceed max_length "
                                    f"{max_length}; image tokens are never cut: lower --longest-edge, use "
                                    f"--no-split, or raise --max-length"))
        elif not (encoded["labels"] != IGNORE_INDEX).any():
            problems.append(Problem(example.line_number, "the answer has no tokens"))
        else:
            good.append(example)
    return good, problems


@dataclass
class Collator:
    """Loads, encodes and right-pads a batch of examples (frames and pixels padded with zeros)."""

    processor: Any
    image_token_id: int
    max_input_px: int
    pdf: PdfSpec

    def __call__(self, examples: list[Example]) -> dict[str, torch.Tensor]:
        encoded = [encode(e, load_images(e, self.max_input_px, self.pdf), self.processor, self.image_token_id)
                   for e in examples]
        pad_id = self.processor.tokenizer.pad_token_id
        batch = {
            "input_ids": _pad_1d([e["input_ids"] for e in encoded], pad_id),
            "attention_mask": _pad_1d([e["attention_mask"] for e in encoded], 0),
            "labels": _pad_1d([e["labels"] for e in encoded], IGNORE_INDEX),
        }
        for key in ("pixel_values", "pixel_attention_mask"):
            if key in encoded[0]:
                batch[key] = _pad_frames([e[key] for e in encoded])
        return batch


def _length(processor: Any, messages: list[dict], add_generation_prompt: bool) -> int:
    text = processor.apply_chat_template(messages, add_generation_prompt=add_generation_prompt) if messages else ""
    return len(processor.tokenizer(text)["input_ids"])


def _pad_1d(rows: list[torch.Tensor], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=rows[0].dtype)
    for index, row in enumerate(rows):
        out[index, : len(row)] = row
    return out


def _pad_frames(rows: list[torch.Tensor]) -> torch.Tensor:
    """Stack (frames, ...) tensors of different frame counts and sizes, zero-padding every dimension."""
    shape = [len(rows)] + [max(r.shape[d] for r in rows) for d in range(rows[0].dim())]
    out = torch.zeros(shape, dtype=rows[0].dtype)
    for index, row in enumerate(rows):
        out[(index, *[slice(0, n) for n in row.shape])] = row
    return out
