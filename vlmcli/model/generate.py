"""Model inputs from messages and images, and `model.generate` on them (torch, transformers).

Inference's one caller of the processor and of `generate`: greedy decoding,
stop on the end-of-utterance token, a repetition guard that ends loops, and
token-by-token streaming through a callback. (Training builds its inputs with
the same processor and chat template in finetune/collate.py, adding labels.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from PIL import Image
from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer
from transformers.generation.streamers import BaseStreamer

from vlmcli.errors import InputError, ModelError, ResourceError, first_line
from vlmcli.model.levers.heap import return_freed_heap
from vlmcli.model.levers.image_features import encoded_images, pixels_per_call
from vlmcli.model.loading import LoadedModel
from vlmcli.model.padding import padded_rows, zero_padded_stack
from vlmcli.model.repetition import loop_start
from vlmcli.specs import GenerationSpec, KVCache


@dataclass(frozen=True)
class Generation:
    """What one generate call produced, and what it cost."""

    text: str
    token_ids: tuple[int, ...]  # the tokens behind `text` (after stop and loop truncation)
    image_tokens: int
    prompt_tokens: int
    new_tokens: int
    seconds: float
    finish_reason: str  # "stop" | "length" | "repetition" | "time"
    first_token_s: float = 0.0  # from the call to the first new token: vision encoding + prefill


def build_inputs(loaded: LoadedModel, messages: list[dict], images: list[Image.Image]) -> dict:
    """The family's prompt (its chat template, or its card's own format) + processor: the model inputs for one
    conversation, on the model's device."""
    processor = loaded.processor
    text = loaded.family.prompt(processor, messages)
    images = fit_pages(loaded.family, images, loaded.max_input_px)
    try:
        # A conversation without images (the server's text-only chats) gives the processor none at all.
        inputs = processor(text=[text], images=[images] if images else None, return_tensors="pt")
    except ValueError as exc:
        raise InputError(f"the processor refused the image ({exc})",
                         hint="very small or extremely thin images may need padding") from None
    inputs = inputs.to(loaded.device)
    if loaded.uses("heap"):
        return_freed_heap()
    for key in inputs:  # every view of the image (DeepSeek-OCR-2 has a global one and tiles) in the model's dtype
        if key.startswith("pixel_values") and inputs[key].is_floating_point():
            inputs[key] = inputs[key].to(loaded.dtype)
    return dict(inputs)


def fit_pages(family, images: list[Image.Image], edge_px: int) -> list[Image.Image]:
    """The images as a family that `fit_pages` reads them: each larger than `edge_px` scaled down (bicubic) to that
    longest side, as its card renders pages (olmOCR-2: 1288 px); other families' images as they are."""
    if not family.fit_pages:
        return images
    fitted = []
    for image in images:
        scale = edge_px / max(image.size)
        fitted.append(image.resize((round(image.width * scale), round(image.height * scale)),
                                   Image.Resampling.BICUBIC) if scale < 1 else image)
    return fitted


def merge_rows(loaded: LoadedModel, rows: list[dict]) -> dict:
    """One batch from single-conversation inputs (`build_inputs`), padded as the processor pads a batch
    (model/padding.py). Building rows one by one lets them be preprocessed on several threads. Token rows are
    left-padded; image inputs the family lists as concatenated (a flat list of patches, their grid) are joined,
    from the rows that have them (a page too small for DeepSeek-OCR-2's tiles has none), the others (a row's
    images) stacked with zero padding."""
    pad_id = loaded.processor.tokenizer.pad_token_id
    batch = {"input_ids": padded_rows([row["input_ids"][0] for row in rows], pad_id, left=True),
             "attention_mask": padded_rows([row["attention_mask"][0] for row in rows], 0, left=True)}
    for key in dict.fromkeys(key for row in rows for key in row if key not in batch):
        if key in loaded.family.concatenated_inputs:
            batch[key] = torch.cat([row[key] for row in rows if key in row])
        elif key in TOKEN_ALIGNED:
            batch[key] = padded_rows([row[key][0] for row in rows], 0, left=True)
        else:
            batch[key] = zero_padded_stack([row[key][0] for row in rows])
    return batch


TOKEN_ALIGNED = ("token_type_ids", "mm_token_type_ids")  # per-token inputs beside the ids: padded like them


def generate_batch(loaded: LoadedModel, inputs: dict, spec: GenerationSpec) -> list[Generation]:
    """Greedy answers for the rows of `merge_rows`: one generate call, so a GPU reads many pages at once.

    Rows stop on their own (end of utterance or a loop); `seconds` is the whole call's.
    """
    prompt_ids = inputs["input_ids"]
    spec = within_context(loaded, spec, prompt_ids.shape[1])
    guard = _RepetitionGuard(prompt_ids.shape[1], spec)
    first_token = _FirstToken()
    started = time.perf_counter()
    output = _greedy(loaded, inputs, spec, guard, first_token, ResourceError(
        "out of memory while generating a batch", hint="lower --batch-size, or see --longest-edge / --quantize"))
    seconds = time.perf_counter() - started
    first_token_s = (first_token.at or started) - started
    return [_row_generation(loaded, inputs, output, row, guard, spec, seconds, first_token_s)
            for row in range(prompt_ids.shape[0])]


def _greedy(loaded: LoadedModel, inputs: dict, spec: GenerationSpec, guard: StoppingCriteria, streamer,
            out_of_memory: ResourceError) -> torch.Tensor:
    """The one `model.generate` call: greedy (or sampling at a temperature above 0), stop tokens, the loop guard,
    `spec`'s optional limits and stop strings."""
    optional: dict = {"do_sample": False}
    if spec.repetition_penalty != 1.0:
        optional["repetition_penalty"] = spec.repetition_penalty
    if spec.max_time_s is not None:
        optional["max_time"] = spec.max_time_s
    if spec.temperature > 0:
        optional.update(do_sample=True, temperature=spec.temperature, top_p=spec.top_p, top_k=None)
    if spec.stop:
        optional.update(stop_strings=list(spec.stop), tokenizer=loaded.processor.tokenizer)
    optional.update(_cache_options(spec.kv_cache, loaded.device))
    try:
        with torch.inference_mode():
            _encode_images_in_place(loaded, inputs)
            # use_cache: granite-docling's config turns the KV cache off, which makes each step re-read the prompt.
            return loaded.model.generate(
                **inputs, use_cache=True, max_new_tokens=spec.max_new_tokens, min_new_tokens=spec.min_new_tokens,
                eos_token_id=loaded.stop_token_ids, pad_token_id=loaded.processor.tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([guard]), streamer=streamer, **optional,
            )
    except torch.OutOfMemoryError:
        _release_cached_memory()
        raise out_of_memory from None
    except ValueError as exc:  # transformers' check that the prompt holds a token per image feature
        if "image tokens do not match" not in str(exc).lower():
            raise
        raise ModelError(f"the checkpoint's processor and model disagree ({first_line(exc)})",
                         hint="its processor files may be from another model or version") from None


def _encode_images_in_place(loaded: LoadedModel, inputs: dict) -> None:
    """Swap the pixels in `inputs` for the images' features (levers/image_features.py): a loop retry on the same
    inputs reuses them instead of running the vision tower again, and the pixels are freed before the prefill.
    With the lever off, `generate` encodes the pixels itself."""
    if "pixel_values" in inputs and loaded.uses("image_features"):
        encoded = encoded_images(loaded.model, inputs, pixels_per_call(loaded.device))
        inputs.clear()
        inputs.update(encoded)


def _cache_options(kv_cache: KVCache, device: str) -> dict:
    """generate's cache argument. A static cache skips growing the cache every step, which decodes faster on a
    CPU with the same tokens in float32 (tested). On a GPU transformers then compiles the decode step for each
    batch shape first, which pays on long runs only: there it is opt-in (README, "Performance").
    """
    if kv_cache is KVCache.auto:
        kv_cache = KVCache.static if device == "cpu" else KVCache.dynamic
    return {"cache_implementation": "static"} if kv_cache is KVCache.static else {}


def _row_generation(loaded, inputs, output, row: int, guard, spec: GenerationSpec, seconds: float,
                    first_token_s: float) -> Generation:
    """Row `row` of a generate call's output as a Generation (a single conversation is row 0)."""
    prompt_ids, attention = inputs["input_ids"][row], inputs["attention_mask"][row]
    new_ids = output[row, prompt_ids.shape[0]:].tolist()
    ended = next((i for i, token in enumerate(new_ids) if token in loaded.stop_token_ids), None)
    if ended is not None:
        new_ids = new_ids[:ended + 1]  # what follows is padding: this row had finished
    kept_ids, finish_reason = _finish(new_ids, loaded, guard.cut(row), spec)
    if ended is None and guard.cut(row) is None and len(new_ids) < spec.max_new_tokens:
        finish_reason = "time"  # neither a stop token, a loop nor the length: max_time ended the call
    text = loaded.processor.tokenizer.decode(kept_ids, skip_special_tokens=not loaded.family.keep_special_tokens).strip()
    text, stopped = cut_at_stop(text, spec.stop)
    if stopped:
        finish_reason = "stop"
    return Generation(text=text, token_ids=tuple(kept_ids), image_tokens=int((prompt_ids == loaded.image_token_id).sum()),
                      prompt_tokens=int(attention.sum()), new_tokens=len(new_ids), seconds=seconds,
                      finish_reason=finish_reason, first_token_s=first_token_s)


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to the first stop string, and whether one was found (OpenAI's `stop`: not part of the text)."""
    found = [text.index(s) for s in stop if s and s in text]
    return (text[:min(found)], True) if found else (text, False)


def generate(loaded: LoadedModel, messages: list[dict], images: list[Image.Image], spec: GenerationSpec,
             on_text: Callable[[str], None] | None = None) -> Generation:
    """Answer one conversation greedily; stream text pieces to `on_text` as they are decoded."""
    return generate_from_inputs(loaded, build_inputs(loaded, messages, images), spec, on_text)


def generate_from_inputs(loaded: LoadedModel, inputs: dict, spec: GenerationSpec,
                         on_text: Callable[[str], None] | None = None) -> Generation:
    """`generate` for inputs already built by `build_inputs` (so that can run ahead, on another thread)."""
    spec = within_context(loaded, spec, inputs["input_ids"].shape[1])
    guard = _RepetitionGuard(inputs["input_ids"].shape[1], spec)
    streamer = _Streamer(loaded.processor.tokenizer, on_text, keep_special_tokens=loaded.family.keep_special_tokens,
                         dropped=_dropped_stop_texts(loaded))
    started = time.perf_counter()
    output = _greedy(loaded, inputs, spec, guard, streamer, ResourceError(
        "out of memory while generating",
        hint="try --longest-edge with a smaller value, --no-split, or --quantize 4bit"))
    seconds = time.perf_counter() - started
    return _row_generation(loaded, inputs, output, 0, guard, spec, seconds,
                           first_token_s=(streamer.first_token_at or started) - started)


def within_context(loaded: LoadedModel, spec: GenerationSpec, prompt_tokens: int) -> GenerationSpec:
    """`spec` with no more new tokens than the context has room for after the prompt: the model cannot attend
    past its context, and a static cache is allocated for the whole budget before the first token."""
    room = loaded.context_tokens - prompt_tokens if loaded.context_tokens else None
    if room is None or spec.max_new_tokens <= room:
        return spec
    if room < 1:
        raise InputError(f"the prompt takes {prompt_tokens} tokens, the model's whole context of "
                         f"{loaded.context_tokens}", hint="lower --longest-edge or use --no-split: fewer image tokens")
    return replace(spec, max_new_tokens=room, min_new_tokens=min(spec.min_new_tokens, room))


def _dropped_stop_texts(loaded: LoadedModel) -> tuple[str, ...]:
    """The text of the stop tokens that end an answer without being part of it (seen only with special tokens)."""
    if not loaded.family.keep_special_tokens:
        return ()
    ids = [i for i in loaded.stop_token_ids if i not in loaded.kept_stop_ids]
    return tuple(loaded.processor.tokenizer.convert_ids_to_tokens(ids))


def _release_cached_memory() -> None:
    # The failed attempt's activations are garbage now; hand the cached blocks
    # back so a retry at a lower resolution starts from a clean allocator.
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _finish(new_ids: list[int], loaded: LoadedModel, cut_at: int | None,
            spec: GenerationSpec) -> tuple[list[int], str]:
    """The tokens of the text (a stop token is dropped unless it belongs to the text) and why generation ended."""
    if cut_at is not None:
        return new_ids[:cut_at], "repetition"
    if new_ids and new_ids[-1] in loaded.stop_token_ids:
        return (new_ids if new_ids[-1] in loaded.kept_stop_ids else new_ids[:-1]), "stop"
    return new_ids, "length" if len(new_ids) >= spec.max_new_tokens else "stop"


class _RepetitionGuard(StoppingCriteria):
    """Stops each row once its output ends in a loop; remembers, per row, where the loop began."""

    def __init__(self, prompt_length: int, spec: GenerationSpec) -> None:
        self.prompt_length = prompt_length
        self.min_tokens = spec.repetition_min_tokens
        self.min_repeats = spec.repetition_min_repeats
        self.cut_at: list[int | None] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        if not self.cut_at:
            self.cut_at = [None] * input_ids.shape[0]
        generated_length = input_ids.shape[1] - self.prompt_length
        if generated_length >= self.min_tokens:
            for row, cut_at in enumerate(self.cut_at):
                if cut_at is None:
                    self.cut_at[row] = loop_start(input_ids[row, self.prompt_length:].tolist(),
                                                  self.min_tokens, self.min_repeats)
        done = [cut_at is not None for cut_at in self.cut_at]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def cut(self, row: int) -> int | None:
        return self.cut_at[row] if self.cut_at else None


class _FirstToken(BaseStreamer):
    """Notes when the first new token of a batch arrives (the first `put` is the prompt)."""

    def __init__(self) -> None:
        self.puts, self.at = 0, None

    def put(self, value) -> None:
        self.puts += 1
        if self.puts == 2:
            self.at = time.perf_counter()

    def end(self) -> None:
        pass


class _Streamer(TextStreamer):
    """Notes when the first new token arrives; with `on_text`, also streams text (transformers' word-boundary logic)."""

    def __init__(self, tokenizer, on_text: Callable[[str], None] | None, keep_special_tokens: bool = False,
                 dropped: tuple[str, ...] = ()) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=not keep_special_tokens)
        self.on_text = on_text
        self.dropped = dropped  # stop tokens' text, which the final text leaves out too
        self.first_token_at: float | None = None
        self._seen_prompt = False

    def put(self, value) -> None:
        if self._seen_prompt and self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self._seen_prompt = True
        if self.on_text is not None:
            super().put(value)

    def end(self) -> None:
        if self.on_text is not None:
            super().end()

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        for stop_text in self.dropped:
            text = text.replace(stop_text, "")
        if text:
            self.on_text(text)
