"""The family profile beyond the transformers path: the readable text whole-document `ask` ranks and grounds on,
the turns and decoding `--engine server` and `--engine vllm` ask with (vLLM faked: it does not install beside
vlmcli's transformers, see test_vllm_engine.py), and what a page hands to /v1/ocr's stream."""

from __future__ import annotations

import dataclasses
import json
import sys
import types

import pytest
from PIL import Image

from tools.pdfs import scanned_pdf
from vlmcli.inputs.documents import PageRef
from vlmcli.model.families import by_name
from vlmcli.pipeline.docqa.answerer import PageAnswer
from vlmcli.pipeline.results import PageResult
from vlmcli.specs import ANSWER_MAX_NEW_TOKENS, FirstPass, FirstPassSpec, ModelSpec, RunSpec, SearchSpec

GROUNDED = "<|ref|>text<|/ref|><|det|>[[40, 50, 900, 90]]<|/det|>\nRent is 900 EUR a month."
PAGE = Image.new("RGB", (32, 24), "white")


@pytest.mark.parametrize(("family", "raw", "readable"), [
    ("deepseek_ocr2", GROUNDED, "Rent is 900 EUR a month."),
    ("olmocr2", "---\nprimary_language: en\n---\nRent is due.", "Rent is due."),
    ("doctags", ("<doctag><text><loc_1><loc_2><loc_3><loc_4>Rent &amp; fees</text><otsl><fcel>A<fcel>1<nl></otsl>"
                 "</doctag>"), "Rent & fees\nA 1"),
    ("granite_docling", '<doclang><text><location value="3"/><![CDATA[a < b]]></text></doclang>', "a < b"),
    ("lighton_ocr", "| a | b |", "| a | b |"),
])
def test_readable_text_is_the_parsers_text_without_markup(family, raw, readable):
    assert by_name(family).readable(raw) == readable


class _Transcriber:
    """A reader whose transcription is DeepSeek-OCR-2's grounded Markdown and whose answer is right."""

    def __init__(self) -> None:
        self.transcribed = 0

    def transcribe(self, ref: PageRef) -> str:
        self.transcribed += 1
        return GROUNDED

    def answer(self, ref: PageRef, question: str, on_text) -> PageAnswer:
        return PageAnswer("900 EUR", 64, 3, 0.01, "stop")


def test_whole_document_ask_ranks_and_grounds_on_the_readable_text(tmp_path):
    """A scan is transcribed as the model writes it (grounding tags and all, as `vlmcli ocr` caches it) and
    ranked and grounded on its readable text, from the transcription and from the cache alike."""
    from vlmcli.pipeline.docqa import answer as docqa

    path = scanned_pdf(tmp_path / "lease.pdf", ["Rent is 900 EUR a month."])
    run = RunSpec.from_options(family="deepseek_ocr2", default_max_new_tokens=ANSWER_MAX_NEW_TOKENS)
    search = SearchSpec(first_pass=FirstPassSpec(FirstPass.model))
    for transcriptions in (1, 0):  # the second time the page's text comes from the page cache
        answerer = _Transcriber()
        answer = docqa.ask_documents([path], "How much is the rent?", run, search, answerer=answerer)
        assert answerer.transcribed == transcriptions
        assert answer.ranked[0].page.text == "Rent is 900 EUR a month."
        assert answer.grounded and answer.grounding == "exact"


@pytest.mark.parametrize(("family", "roles", "parts"), [
    ("lighton_ocr", ["user"], ["image_url"]),  # the card: the image alone
    ("olmocr2", ["user"], ["text", "image_url"]),  # its prompt before the image
    ("nanonets_ocr2", ["system", "user"], ["image_url", "text"]),  # the card's system turn
])
def test_engine_server_asks_in_the_familys_turns(family, roles, parts):
    from vlmcli.pipeline.engines.openai_client import family_messages

    profile = by_name(family)
    messages = family_messages(profile, [PAGE], profile.instruction())
    assert [message["role"] for message in messages] == roles
    assert [part["type"] for part in messages[-1]["content"]] == parts
    assert messages[-1]["content"][parts.index("image_url")]["image_url"]["url"].startswith("data:image/png;base64,")


def test_engine_server_keeps_special_tokens_where_the_family_does():
    """The request asks the server (vLLM's extension) to keep the special tokens of a family whose output they
    are; vlmcli serve names its family in /models, which --family overrides."""
    httpx = pytest.importorskip("httpx", reason="needs the vlmcli[serve] extra")
    from vlmcli.pipeline.engines.openai_client import ChatClient
    from vlmcli.pipeline.engines.server import served_family
    from vlmcli.specs import EngineSpec, GenerationSpec

    bodies = []

    def handle(request):
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": {"content": "x"}}], "usage": {}})

    client = ChatClient(EngineSpec(server_url="http://server.test/v1"), transport=httpx.MockTransport(handle))
    for keep in (True, False):
        client.chat("m", [], GenerationSpec(max_new_tokens=2), keep_special_tokens=keep)
    assert bodies[0]["skip_special_tokens"] is False and "skip_special_tokens" not in bodies[1]
    spec = ModelSpec(model_id="/nowhere", offline=True)
    assert served_family({"family": "deepseek_ocr2"}, spec).name == "deepseek_ocr2"
    assert served_family({"family": "deepseek_ocr2"}, dataclasses.replace(spec, family="olmocr2")).name == "olmocr2"
    assert served_family({"family": "a_family_of_a_later_release"}, spec).name == "smolvlm"  # the files decide


class _FakeLlm:
    """vLLM's LLM as far as the engine calls it: records what it is asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list, object]] = []

    def get_tokenizer(self):
        return types.SimpleNamespace(get_vocab=lambda: {"<|end▁of▁sentence|>": 1, "</doctag>": 7,
                                                        "<end_of_utterance>": 8},
                                     convert_tokens_to_ids=lambda token: 0)

    def _outputs(self, rows):
        completion = types.SimpleNamespace(token_ids=[5, 6], text="read", finish_reason="stop")
        return [types.SimpleNamespace(outputs=[completion], prompt_token_ids=[0, 0, 3]) for _ in rows]

    def generate(self, prompts, params, use_tqdm=False):
        self.calls.append(("generate", prompts, params))
        return self._outputs(prompts)

    def chat(self, conversations, params, use_tqdm=False):
        self.calls.append(("chat", conversations, params))
        return self._outputs(conversations)


@pytest.mark.parametrize(("family", "call", "keep", "stop_ids"), [
    ("deepseek_ocr2", "generate", True, None),  # no chat template: the card's prompt text
    ("doctags", "chat", True, [8]),  # </doctag> belongs to the text: not a vLLM stop token
    ("smolvlm", "chat", False, [8]),
])
def test_engine_vllm_asks_and_decodes_as_the_family_says(family, call, keep, stop_ids, monkeypatch):
    """Its turns (or a template-less family's prompt text), special tokens kept where they are the text, and the
    family's own stop tokens save those that belong to the text."""
    from vlmcli.pipeline.engines.vllm import VllmEngine
    from vlmcli.progress import NullProgress
    from vlmcli.specs import GenerationSpec

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=lambda **kwargs: kwargs,
                                                                   LLM=lambda **kwargs: _FakeLlm()))
    engine = VllmEngine()
    engine.start(RunSpec.from_options(model="/nowhere", family=family, offline=True), NullProgress())
    assert engine.family.name == family  # the profile load_profile gives (here: --family)
    instruction = engine.family.instruction()
    generation = engine.chat([PAGE], instruction, GenerationSpec(max_new_tokens=2))
    assert generation.text == "read"
    (made, rows, params), = engine.llm.calls
    assert made == call and params["skip_special_tokens"] is (not keep) and params["stop_token_ids"] == stop_ids
    if call == "generate":
        assert rows == [{"prompt": f"<image>\n{instruction}", "multi_modal_data": {"image": [PAGE]}}]
    else:
        assert rows[0][-1]["content"][0] == {"type": "image_pil", "image_pil": PAGE}


def test_a_page_reaches_its_listeners_parsed_and_docling_json_is_not_streamed(tmp_path):
    """`on_page` (what /v1/ocr streams) hears the page as `ocr -f json` writes it: DeepSeek-OCR-2's boxes out of
    the text. A Docling model's JSON (DocTags or DocLang) is the whole document's, so it is not streamed."""
    from vlmcli.jobs import ocr as ocr_job
    from vlmcli.jobs.outputs import record
    from vlmcli.serve.documents import OcrOptions, streams_pages

    page = tmp_path / "page.png"
    PAGE.save(page)

    class Engine:
        def start(self, run, progress):
            pass

        def transcribe(self, todo, instruction, run):
            for ref in todo:
                yield PageResult(ref.source, ref.page_number, GROUNDED, 1, 1, 0.0, "stop")

    heard = []
    request = ocr_job.OcrRequest(inputs=(page,), instruction="", run=RunSpec.from_options(cache=False),
                                 output_format=ocr_job.OutputFormat.json, family=by_name("deepseek_ocr2"))
    ocr_job.run_ocr(request, write=lambda text: None, engine=Engine(), on_page=heard.append)
    (line,) = [record(item) for item in heard]
    assert line["text"] == "Rent is 900 EUR a month." and line["boxes"][0]["bbox"] == [0.04, 0.0501, 0.9009, 0.0901]
    json_options = OcrOptions()
    assert streams_pages(json_options, by_name("deepseek_ocr2"))
    assert not streams_pages(json_options, by_name("granite_docling")) and not streams_pages(json_options,
                                                                                             by_name("doctags"))
