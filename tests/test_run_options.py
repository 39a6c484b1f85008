"""The run options are defined once (specs/options.py): the command line, `RunSpec.from_options` and the resume
fingerprint follow from that definition, and an option that decides a page's text changes the fingerprint."""

from __future__ import annotations

import dataclasses
import inspect
from enum import Enum
from pathlib import Path

import pytest
from typer.main import get_command

from vlmcli.cli import app
from vlmcli.jobs import ocr as ocr_job
from vlmcli.specs import RunOptions, RunSpec, run_option_fields


def test_every_option_is_a_keyword_of_from_options_and_a_flag_of_ask_ocr_and_serve():
    keywords = inspect.signature(RunSpec.from_options).parameters
    commands = get_command(app).commands
    for item in dataclasses.fields(RunOptions):
        option = item.metadata["option"]
        assert item.name in keywords, item.name
        for name in ("ocr", "ask", "serve"):
            if name == "serve" and option.engine:
                continue
            flags = {flag for param in commands[name].params for flag in (*param.opts, *param.secondary_opts)}
            first = option.flags[0].split("/")[0]
            assert first in flags, (name, first)
        assert option.text or option.why_not_text, f"{item.name}: say why it does not decide a page's text"
    assert RunSpec.from_options(**vars(RunOptions())) == RunSpec.from_options()
    assert [item.name for item in run_option_fields(engine=False)] == [
        item.name for item in dataclasses.fields(RunOptions) if not item.metadata["option"].engine]


def _other(name: str, default, tmp_path: Path):
    """A value of the option other than its default."""
    if name == "adapter":
        folder = tmp_path / "adapter"
        folder.mkdir(exist_ok=True)
        (folder / "adapter_config.json").write_text("{}")
        return folder
    if name == "pdf_renderer":  # another renderer than the one auto resolves to here
        from vlmcli.inputs import pdfs
        from vlmcli.specs import PdfSpec

        resolved = pdfs.renderer(PdfSpec())
        return next(member for member in type(default) if member.value not in ("auto", resolved))
    if isinstance(default, Enum):
        return next(member for member in type(default) if member != default)
    if isinstance(default, bool):
        return not default
    if name in ("max_new_tokens", "longest_edge", "concurrency"):
        return 640
    if name == "split":
        return False
    if name == "model":
        return "someone/another-model"
    return "x"


def _fingerprint(options: RunOptions) -> str:
    from vlmcli.cache import keys

    run = RunSpec.from_options(**vars(options))
    # What a load would resolve, taken from the options themselves, so each option's own effect is what is seen.
    resolved = {"device": options.device.value, "dtype": options.dtype.value, "levers": []}
    request = ocr_job.OcrRequest(inputs=(), instruction="Read.", run=run)
    return keys.settings_fingerprint(ocr_job.run_settings(request, resolved))


@pytest.mark.parametrize("name", [item.name for item in dataclasses.fields(RunOptions)])
def test_an_option_that_decides_the_text_changes_the_fingerprint(name, tmp_path):
    default = RunOptions()
    field = next(item for item in dataclasses.fields(RunOptions) if item.name == name)
    changed = dataclasses.replace(default, **{name: _other(name, field.default, tmp_path)})
    if name in ("engine",):  # another engine needs its address to build a run; the address itself is not text
        changed = dataclasses.replace(changed, server_url="http://127.0.0.1:9/v1")
    if name == "password":  # a password makes PDFium read the file; with PDFium named, the pixels are the same
        default = dataclasses.replace(default, pdf_renderer=type(default.pdf_renderer)("pdfium"))
        changed = dataclasses.replace(changed, pdf_renderer=default.pdf_renderer)
    differs = _fingerprint(changed) != _fingerprint(default)
    assert differs == field.metadata["option"].text, name
