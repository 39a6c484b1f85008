"""Model families: one profile per family holds its model card's recipe, so the rest of vlmcli asks the profile
instead of knowing checkpoints (stdlib only; the profiles import no model library).

A profile says how a page is asked for (the card's prompt, whether it goes through the chat template, where the
image goes, a system turn), how the answer is decoded (special tokens kept or not, the tokens that end it, its
budget and loop guard, whether pages are read whole), the resolution knob that `--split` / `--longest-edge` map
to (resolution.py), how the output is parsed (parsing.py), and where LoRA goes in fine-tuning. A family is
recognised from the checkpoint's config (`model_type`), and, where two families share an architecture (DocTags
checkpoints are Idefics3), from marks in its tokenizer's files; never from its name. Any other checkpoint
transformers loads as image-text-to-text gets the generic profile: its chat template, text out. Adding a family
is adding a profile here (and its tiny model in tools/models), nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vlmcli.errors import UsageError
from vlmcli.model.families.parsing import PARSERS, Parsed, markup_words
from vlmcli.model.families.resolution import Resolution, UNSTATED_EDGE_PX
from vlmcli.prompts import HANDWRITING_PROMPT, OCR_PROMPT
from vlmcli.specs import PageTranscription, SplitSpec

IMAGES_FIRST, TEXT_FIRST, RAW = "images_first", "text_first", "raw"  # where a turn's text goes, or no template
TEXT, MARKDOWN, DOCTAGS, DOCLANG = "text", "markdown", "doctags", "doclang"  # what a family writes for a page
# The language model's attention and MLP projections, under any of the names transformers gives the language model.
TEXT_PROJECTIONS = r".*(language_model|text_model)\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


@dataclass(frozen=True)
class LoraTargets:
    """Where the staged recipe puts LoRA in this family (PEFT regexes, matched in full), and the modules new in
    the vision-language model that stages 1 and 2 train fully (the Idefics2 paper's connector)."""

    text: str = TEXT_PROJECTIONS
    vision: str | None = None  # None: the vision tower stays frozen in every stage
    connector: tuple[str, ...] = ()

    def regex(self, with_vision: bool) -> str:
        return f"({self.vision})|({self.text})" if with_vision and self.vision else self.text


@dataclass(frozen=True)
class Family:
    name: str
    summary: str
    model_types: frozenset[str]  # config.json's model_type values; empty: any (the generic profile)
    resolution: Resolution
    lora: LoraTargets = LoraTargets()
    output: str = TEXT
    ocr_prompt: str | None = OCR_PROMPT  # None: the page image alone, as the card asks (LightOnOCR)
    handwriting_prompt: str | None = HANDWRITING_PROMPT
    tasks: Mapping[str, str] = field(default_factory=dict)  # --task NAME -> the card's prompt for it
    system_prompt: str | None = None  # a system turn before the user's, as the card's example has it
    layout: str = IMAGES_FIRST
    image_placeholder: str = "<image>"  # RAW layout: what stands for each image in the prompt text
    keep_special_tokens: bool = False  # decode with them: they are the output (DocTags, grounding tags)
    extra_stop_tokens: tuple[str, ...] = ()  # tokens that end an answer besides the generation config's eos
    kept_stop_tokens: tuple[str, ...] = ()  # stop tokens that belong to the text (</doctag>)
    # Training: the token that ends an answer where the chat template writes none after it (GLM's turn ends by
    # starting the user's: <|user|>), so the model learns to stop. RAW layouts end with the tokenizer's eos.
    answer_end: str | None = None
    transcription: PageTranscription = PageTranscription()  # a page's token budget, loop guard, whether it is whole
    parser: str = "plain"  # parsing.PARSERS
    tokenizer_marks: tuple[str, ...] = ()  # tokens whose presence tells this family from others of its type
    concatenated_inputs: tuple[str, ...] = ()  # processor outputs whose rows a batch joins (Qwen's patch lists)
    fit_pages: bool = False  # pages scaled down to the input edge (longest side) first, as the card renders them
    recognisable: bool = True  # False: chosen by name only (--family, an alias), its architecture being another's
    # The children of the model's inner `model` that hold the vision tower and its connector (where the vision
    # levers act); empty: not stated, and no vision lever applies.
    vision_parts: tuple[str, ...] = ()

    @property
    def writes_doctags(self) -> bool:
        return self.output == DOCTAGS

    @property
    def docling_markup(self) -> str | None:
        """The Docling markup the family writes for a page (DOCTAGS, DOCLANG), which docling-core converts into a
        document (Markdown, HTML, tables, element boxes); None for a family that writes text."""
        return self.output if self.output in (DOCTAGS, DOCLANG) else None

    def recognises(self, model_type: str | None, tokenizer_text: str) -> bool:
        if not self.recognisable:
            return False
        typed = not self.model_types or model_type in self.model_types
        return typed and all(f'"{mark}"' in tokenizer_text for mark in self.tokenizer_marks)

    def instruction(self, prompt: str | None = None, handwriting: bool = False, task: str | None = None) -> str | None:
        """A transcription's instruction: the user's own prompt, a `--task`'s, or the card's (None: image only)."""
        if prompt:
            return prompt
        if task is not None:
            if task not in self.tasks:
                known = ", ".join(self.tasks) or "none"
                raise UsageError(f"--task {task}: the {self.name} family has no such task",
                                 hint=f"its tasks: {known}")
            return self.tasks[task]
        return self.handwriting_prompt if handwriting else self.ocr_prompt

    def messages(self, instruction: str | None, image_count: int) -> list[dict]:
        """One user turn (after the card's system turn, if it has one): the images and the instruction, in the
        order the card puts them."""
        images = [{"type": "image"} for _ in range(image_count)]
        text = [{"type": "text", "text": instruction}] if instruction else []
        content = text + images if self.layout == TEXT_FIRST else images + text
        system = [{"role": "system", "content": [{"type": "text", "text": self.system_prompt}]}] \
            if self.system_prompt else []
        return [*system, {"role": "user", "content": content}]

    def messages_with(self, instruction: str | None, images: list, image_part: Callable[[Any], dict]) -> list[dict]:
        """`messages` for a chat API outside this process (an OpenAI-compatible server, vLLM): each image as the
        content part `image_part(image)` makes of it, where the card puts it."""
        parts = iter(images)
        return [{**message, "content": [image_part(next(parts)) if part["type"] == "image" else part
                                        for part in message["content"]]}
                for message in self.messages(instruction, len(images))]

    def prompt(self, processor: Any, messages: list[dict], *, add_generation_prompt: bool = True) -> str:
        """The prompt text the processor is given: the chat template's rendering, or (RAW) the card's own format:
        a placeholder per image, a newline, the instruction, then any answer as it stands."""
        if self.layout != RAW:
            return processor.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)
        parts = []
        for message in messages:
            for part in message["content"]:
                if part["type"] == "image":
                    parts.append(f"{self.image_placeholder}\n")
                elif message["role"] == "assistant":
                    parts.append(part["text"])
                else:
                    parts.append(part["text"])
        return "".join(parts)

    def parse(self, text: str) -> Parsed:
        return PARSERS[self.parser](text)

    def readable(self, text: str) -> str:
        """A page's or answer's words as a reader and a search see them: the parser's text (grounding tags, front
        matter and page furniture out); for Docling markup also its tags (parsing.markup_words)."""
        readable = self.parse(text).text
        return markup_words(readable) if self.docling_markup else readable

    def input_edge_px(self, processor: Any, split: SplitSpec) -> int:
        return self.resolution.configure(processor, split)


@dataclass(frozen=True)
class Untouched:
    """The generic profile's knob: the processor keeps the checkpoint's own settings (vlmcli cannot know what its
    sizes mean), so `--split` and `--longest-edge` are refused; pages are rendered for UNSTATED_EDGE_PX."""

    def configure(self, processor: Any, split: SplitSpec) -> int:
        if split.split is not None or split.longest_edge_px:
            raise UsageError("--split and --longest-edge are not mapped for this model family",
                             hint="leave them out: its processor keeps the checkpoint's own resolution")
        return UNSTATED_EDGE_PX

    def lower(self, processor: Any) -> SplitSpec | None:
        return None

    def describe(self, processor: Any) -> dict:
        return {"longest_edge_px": UNSTATED_EDGE_PX, "split": False}


GENERIC = Family(name="generic", summary="any image-text-to-text checkpoint transformers ships: its chat template, "
                                         "text out", model_types=frozenset(), resolution=Untouched())


def all_families() -> tuple[Family, ...]:
    """Every profile, most specific first (a DocTags checkpoint before the SmolVLM one it is built on), the generic
    one last."""
    from vlmcli.model.families import deepseek, glm_ocr, granite_docling, idefics, lighton_ocr, paddleocr_vl, qwen

    return (*idefics.FAMILIES, *lighton_ocr.FAMILIES, *paddleocr_vl.FAMILIES, *glm_ocr.FAMILIES, *qwen.FAMILIES,
            *deepseek.FAMILIES, *granite_docling.FAMILIES, GENERIC)


def vision_parts(model_type: str | None) -> tuple[str, ...]:
    """The vision parts the families reading `model_type` checkpoints name (Family.vision_parts)."""
    found = [part for family in all_families() if model_type in family.model_types for part in family.vision_parts]
    return tuple(dict.fromkeys(found))


def recognise(model_type: str | None, tokenizer_text: str = "") -> Family:
    """The family of a checkpoint, from its config's `model_type` and its tokenizer files' text."""
    return next(family for family in all_families() if family.recognises(model_type, tokenizer_text))


def by_name(name: str, model_type: str | None = None) -> Family:
    """The family named `name`; with `model_type`, one that reads checkpoints of that type."""
    found = {family.name: family for family in all_families()}
    if name not in found:
        raise UsageError(f"no model family named {name!r}", hint=f"families: {', '.join(found)}")
    family = found[name]
    if model_type is not None and family.model_types and model_type not in family.model_types:
        raise UsageError(f"the {name} family reads {' or '.join(sorted(family.model_types))} checkpoints; this one "
                         f"is {model_type}", hint="leave --family out (the checkpoint's files tell its family), or "
                                                  "name a family of its architecture (`vlmcli models`)")
    return family
