"""Answer a question about one or more images or PDF pages, shown to the model together (no Typer or Rich)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vlmcli import model
from vlmcli.errors import InputError, UsageError
from vlmcli.inputs.documents import PageRef, page_refs
from vlmcli.inputs.pages import page_images
from vlmcli.progress import NullProgress, Progress
from vlmcli.specs import Engine, PdfSpec, RunSpec


def ask(inputs: list[Path], question: str, run: RunSpec, *, page_number: int = 1,
        on_text: Callable[[str], None] | None = None, progress: Progress | None = None):
    """Answer greedily, streaming text pieces to `on_text`; returns the model's `Generation`."""
    if not question.strip():
        raise UsageError("the question is empty")
    refs = [_page(path, page_number, run.pdf) for path in inputs]
    progress = progress or NullProgress()
    if run.engine.kind is not Engine.transformers:
        return _ask_engine(refs, question, run, progress, on_text)
    progress.loading_model(run.model.model_id)
    loaded = model.load(run.model, run.split)
    progress.model_loaded()
    progress.note(loaded.resolved.line(loaded.family.name), detail=True)
    from vlmcli.model.generate import generate

    images = [image for ref in refs for image in page_images(ref, loaded.max_input_px, run.split, run.pdf)]
    return generate(loaded, loaded.family.messages(question, len(images)), images, run.generation, on_text)


def _ask_engine(refs: list[PageRef], question: str, run: RunSpec, progress: Progress,
                on_text: Callable[[str], None] | None):
    """The same question on another engine: the pages rendered here for the engine's model, asked together."""
    from vlmcli.pipeline.transcribe import engine_for

    engine = engine_for(run)
    engine.start(run, progress)
    images = [image for ref in refs for image in page_images(ref, engine.max_input_px, run.split, run.pdf)]
    return engine.chat(images, question, run.generation, on_text=on_text)


def _page(path: Path, page_number: int, pdf: PdfSpec) -> PageRef:
    if path.is_dir():
        raise InputError(f"{path}: is a directory", hint="ask takes image or PDF files")
    refs = page_refs(path, None, pdf)
    if page_number > len(refs):
        raise UsageError(f"--page {page_number} is past the end of {path} ({len(refs)} pages)")
    return refs[page_number - 1]
