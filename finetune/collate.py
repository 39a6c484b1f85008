"""Examples → model inputs with labels (torch, transformers processor).

Labels are -100 everywhere except the assistant answers: prompt, padding and
image tokens never count in the loss. Nothing is truncated: an example longer
than max_length is reported by `validate` instead, since cutting through image
tokens breaks the model's image/token alignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image
from vlmcli.finetune.data import Example, Problem

from vlmcli.errors import InputError, VlmcliError
from vlmcli.inputs.documents import page_ref
from vlmcli.inputs.pages import page_images
from vlmcli.model.families import RAW, Family
from vlmcli.model.families.idefics import SMOLVLM
from vlmcli.model.generate import TOKEN_ALIGNED, fit_pages
from vlmcli.model.padding import padded_rows, zero_padded_stack
from vlmcli.specs import PdfSpec, SplitSpec

IGNORE_INDEX = -100
WHOLE_PAGES = SplitSpec(bands=False)  # a target covers the whole page, so training pages are not banded


def with_pages(example: Example, pdf: PdfSpec) -> Example:
    """The example with its images opened and checked (`Example.pages`), so that later loads skip that."""
    return replace(example, pages=tuple(page_ref(image.path, image.page_number, pdf) for image in example.images))


def example_images(example: Example, max_input_px: int, pdf: PdfSpec, family: Family = SMOLVLM) -> list[Image.Image]:
    """The example's pages, as `ask` and `ocr` show a page to the model (without bands; fitted to the input edge
    where the family's card fits pages)."""
    pages = example.pages or with_pages(example, pdf).pages
    return fit_pages(family, [page_images(ref, max_input_px, WHOLE_PAGES, pdf)[0] for ref in pages], max_input_px)


def family_messages(example: Example, family: Family) -> list[dict]:
    """The example's conversation as the family is asked at inference: a transcription with the family's own
    instruction (its card's; `vlmcli ocr` asks the same), a question in the family's image and text order; a chat
    example as written."""
    if example.kind == "chat":
        return list(example.messages)
    instruction = family.instruction() if example.kind == "transcription" else _question(example)
    return [*family.messages(instruction, len(example.images)), example.messages[-1]]


def _question(example: Example) -> str:
    return next(part["text"] for part in example.messages[-2]["content"] if part["type"] == "text")


def encode(example: Example, images: list[Image.Image], processor: Any, image_token_id: int,
           family: Family = SMOLVLM) -> dict:
    """One example as tensors (batch of 1), with answer-only labels."""
    tokenizer = processor.tokenizer
    messages = family_messages(example, family)
    if family.layout == RAW:
        return _encode_raw(messages, images, processor, image_token_id, family)
    full_text = _text(family, processor, messages, add_generation_prompt=False)
    inputs = processor(text=[full_text], images=[images] if images else None, return_tensors="pt")
    input_ids = inputs["input_ids"][0]
    # Images expand each <image> into many tokens, all before the first answer, so
    # positions after them shift by one constant: measured on the full text.
    shift = len(input_ids) - len(tokenizer(full_text)["input_ids"])
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = _length(family, processor, messages[:index], add_generation_prompt=True) + shift
        end = _length(family, processor, messages[: index + 1], add_generation_prompt=False) + shift
        labels[start:end] = input_ids[start:end]
    labels[input_ids == image_token_id] = IGNORE_INDEX
    encoded = _rows(inputs, family)
    encoded["labels"] = labels
    return encoded


def _encode_raw(messages: list[dict], images: list[Image.Image], processor: Any, image_token_id: int,
                family: Family) -> dict:
    """A family without a chat template (RAW): the prompt (up to the first answer) through the processor, each
    later turn through the tokenizer, and their ids joined, each answer followed by the end token. Tokenized
    apart, as the model is asked at inference: one string would let the tokenizer merge across the prompt's end
    (DeepSeek's pre-tokenizer joins punctuation and the letters after it: "markdown." + "The" -> ".The")."""
    tokenizer = processor.tokenizer
    first = next(index for index, message in enumerate(messages) if message["role"] == "assistant")
    prompt = family.prompt(processor, messages[:first])
    inputs = processor(text=[prompt], images=[images] if images else None, return_tensors="pt")
    ids, labels = [inputs["input_ids"][0]], [torch.full_like(inputs["input_ids"][0], IGNORE_INDEX)]
    for message in messages[first:]:
        text = family.prompt(processor, [message])
        if family.image_placeholder in text:
            raise InputError("an image after the first answer: a model without a chat template takes its images "
                             "before it", hint="put every image in the first user turn")
        answer = message["role"] == "assistant"
        end = family.answer_end or tokenizer.eos_token or ""
        piece = torch.tensor(tokenizer(text + end if answer else text,
                                       add_special_tokens=False)["input_ids"], dtype=ids[0].dtype)
        ids.append(piece)
        labels.append(piece.clone() if answer else torch.full_like(piece, IGNORE_INDEX))
    encoded = _rows(inputs, family)
    encoded["input_ids"], encoded["labels"] = torch.cat(ids), torch.cat(labels)
    encoded["attention_mask"] = torch.ones_like(encoded["input_ids"])
    encoded["labels"][encoded["input_ids"] == image_token_id] = IGNORE_INDEX
    return encoded


def _rows(inputs: Any, family: Family) -> dict:
    """The processor's outputs for one example without the batch dimension; inputs the family concatenates
    across a batch (a flat list of tiles, their count) stay whole."""
    return {key: value if key in family.concatenated_inputs else value[0] for key, value in inputs.items()}


def validate(examples: list[Example], processor: Any, image_token_id: int, max_input_px: int, pdf: PdfSpec,
             max_length: int, family: Family = SMOLVLM) -> tuple[list[Example], list[Problem]]:
    """Load and encode every example once; report unreadable images and over-long sequences by line.

    The good examples come back with their pages opened (`with_pages`)."""
    good, problems = [], []
    for example in examples:
        try:
            example = with_pages(example, pdf)
            encoded = encode(example, example_images(example, max_input_px, pdf, family), processor, image_token_id,
                             family)
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
    """Loads, encodes and right-pads a batch of examples (frames and pixels padded with zeros).

    An example whose source has its own resolution (`Example.resolution`) is encoded by the
    processor of that resolution's view in `views` (processor, max_input_px): the processor's
    resolution lives on the instance, so one copy per resolution, made once. Rows of one
    batch may then hold different numbers of sub-images; the all-zero frames that pad
    the shorter rows are dropped by the model before the vision encoder.
    """

    processor: Any
    image_token_id: int
    max_input_px: int
    pdf: PdfSpec
    views: dict[tuple, tuple[Any, int]] = field(default_factory=dict)
    family: Family = SMOLVLM

    def __call__(self, examples: list[Example]) -> dict[str, torch.Tensor]:
        encoded = []
        for example in examples:
            processor, max_input_px = self.views.get(example.resolution, (self.processor, self.max_input_px))
            encoded.append(encode(example, example_images(example, max_input_px, self.pdf, self.family), processor,
                                  self.image_token_id, self.family))
        pad_id = self.processor.tokenizer.pad_token_id
        batch = {
            "input_ids": padded_rows([e["input_ids"] for e in encoded], pad_id, left=False),
            "attention_mask": padded_rows([e["attention_mask"] for e in encoded], 0, left=False),
            "labels": padded_rows([e["labels"] for e in encoded], IGNORE_INDEX, left=False),
        }
        for key in dict.fromkeys(key for e in encoded for key in e if key not in batch):
            if key in self.family.concatenated_inputs:  # a flat list of tiles: joined, from the rows that have them
                batch[key] = torch.cat([e[key] for e in encoded if key in e])
            elif key in TOKEN_ALIGNED:  # Qwen's mm_token_type_ids, which place its multimodal positions
                batch[key] = padded_rows([e[key] for e in encoded], 0, left=False)
            else:  # a row's images, their masks: zero frames pad the shorter rows
                batch[key] = zero_padded_stack([e[key] for e in encoded])
        return batch


def _text(family: Family, processor: Any, messages: list[dict], add_generation_prompt: bool) -> str:
    """The family's prompt text; where the template writes nothing after a finished answer (the family's
    `answer_end`), the answer ends with the token it is trained to stop at."""
    text = family.prompt(processor, messages, add_generation_prompt=add_generation_prompt) if messages else ""
    if family.answer_end and messages and messages[-1]["role"] == "assistant":
        text += family.answer_end
    return text


def _length(family: Family, processor: Any, messages: list[dict], add_generation_prompt: bool) -> int:
    return len(processor.tokenizer(_text(family, processor, messages, add_generation_prompt))["input_ids"])
