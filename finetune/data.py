"""Training and evaluation data: JSONL, one example per line (images are opened and checked later).

Three shapes are accepted, images given by path relative to the JSONL file:
  {"messages": [...], "images": ["a.png", {"path": "b.pdf", "page": 2}]}   chat format of transformers/TRL
  {"image": "a.png", "question": "...", "answer": "..."}                    question answering
  {"image": "scan.pdf", "page": 3, "text": "..."}                           transcription
Question and transcription examples get the same prompts as `vlmcli ask` and `vlmcli ocr`; a transcription
whose text is a DocTags page (`<doctag>...`) trains as is, with the DocTags instruction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmcli.inputs.documents import PageRef
from vlmcli.prompts import DOCTAGS_PROMPT, OCR_PROMPT, user_messages


@dataclass(frozen=True)
class ImageRef:
    path: Path
    page_number: int = 1  # 1-based page of a PDF or multi-page TIFF


@dataclass(frozen=True)
class Example:
    line_number: int
    kind: str  # "transcription" | "qa" | "chat"
    images: tuple[ImageRef, ...]
    messages: tuple[dict, ...]  # ends with the assistant turn that is the target
    pages: tuple[PageRef, ...] = ()  # `images` opened and checked (finetune.collate.with_pages), once per run
    resolution: tuple[bool | None, int | None] | None = None  # its source's (split, longest_edge_px); None: the stage's

    @property
    def target(self) -> str:
        return _text_of(self.messages[-1])

    @property
    def prompt_messages(self) -> list[dict]:
        return list(self.messages[:-1])


@dataclass(frozen=True)
class Problem:
    line_number: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.message}"


class BadExample(ValueError):
    pass


def load_examples(path: Path) -> tuple[list[Example], list[Problem]]:
    """Parse every line; return the good examples and a problem per bad line."""
    examples, problems = [], []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(number, f"not UTF-8 text (byte {exc.start + 1} of the line)"))
            continue
        if not line.strip():
            continue
        try:
            examples.append(parse_example(json.loads(line), number, path.parent))
        except json.JSONDecodeError as exc:
            problems.append(Problem(number, f"not valid JSON ({exc.msg})"))
        except BadExample as exc:
            problems.append(Problem(number, str(exc)))
    return examples, problems


def parse_example(record: Any, line_number: int, base: Path) -> Example:
    if not isinstance(record, dict):
        raise BadExample("a line must be a JSON object")
    if "messages" in record:
        kind, images, messages = "chat", _images(record.get("images", []), None, base), _chat(record["messages"])
    elif "question" in record or "answer" in record:
        kind = "qa"
        images = _images(record.get("image"), record.get("page"), base)
        messages = user_messages(_required(record, "question"), len(images)) + [_assistant(record.get("answer"))]
    elif "text" in record:
        kind = "transcription"
        images = _images(record.get("image"), record.get("page"), base)
        messages = user_messages(_transcription_prompt(record["text"]), len(images)) + [_assistant(record["text"])]
    else:
        raise BadExample("expected 'messages', 'question'/'answer', or 'text'")
    _check(images, messages)
    return Example(line_number, kind, tuple(images), tuple(messages))


def _transcription_prompt(target: Any) -> str:
    """`vlmcli ocr`'s instruction for this target: a DocTags page is read with the DocTags instruction."""
    return DOCTAGS_PROMPT if isinstance(target, str) and target.lstrip().startswith("<doctag>") else OCR_PROMPT


def _images(value: Any, page: Any, base: Path) -> list[ImageRef]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    refs = []
    for item in items:
        path, number = (item.get("path"), item.get("page", page)) if isinstance(item, dict) else (item, page)
        if not isinstance(path, str) or not path:
            raise BadExample(f"image {item!r} is not a file path")
        if not isinstance(number or 1, int) or (number or 1) < 1:
            raise BadExample(f"page {number!r} is not a page number from 1")
        refs.append(ImageRef(base / path, number or 1))
    return refs


def _chat(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise BadExample("'messages' must be a non-empty list")
    normalized = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise BadExample("each message needs a role of system, user or assistant")
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list):
            raise BadExample("message content must be a string or a list")
        normalized.append({"role": message["role"], "content": [_item(part) for part in content]})
    return normalized


def _item(part: Any) -> dict:
    if isinstance(part, dict) and part.get("type") == "image":
        return {"type": "image"}  # the pixels come from the example's "images" list, in order
    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    raise BadExample(f"unsupported content item {part!r}")


def _assistant(text: Any) -> dict:
    if not isinstance(text, str):
        raise BadExample("the answer/text must be a string")
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def _required(record: dict, key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadExample(f"'{key}' is missing or empty")
    return value


def _check(images: list[ImageRef], messages: list[dict]) -> None:
    if messages[-1]["role"] != "assistant" or not _text_of(messages[-1]).strip():
        raise BadExample("empty target: the last message must be a non-empty assistant answer")
    slots = sum(part["type"] == "image" for m in messages for part in m["content"])
    if slots != len(images):
        raise BadExample(f"{slots} image slot(s) in the messages but {len(images)} image(s) given")
    first_answer = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    if any(part["type"] == "image" for m in messages[first_answer:] for part in m["content"]):
        raise BadExample("images must come before the first answer")
    for ref in images:
        if not ref.path.is_file():
            raise BadExample(f"{ref.path}: no such file")


def _text_of(message: dict) -> str:
    return "".join(part.get("text", "") for part in message["content"])
