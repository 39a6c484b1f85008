"""`--engine server`: each page's bands go to an OpenAI-compatible server (`vlmcli serve`, vLLM, ...),
`--concurrency` pages at a time; rendering, bands, the loop retry and the merge stay here.

The pages are rendered at the edge the server's model takes: `--longest-edge`
if given, else what vlmcli serve says in /models, else the checkpoint's own
processor setting where its files are on this machine, else SmolVLM's 2048 px.
The server then sees, losslessly, the very pixels a local run shows the model,
so a deterministic server gives a local run's text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from vlmcli.errors import UsageError, VlmcliError
from vlmcli.inputs.documents import PageRef
from vlmcli.inputs.pages import page_images
from vlmcli.model.families import Family, all_families
from vlmcli.model.families.idefics import SMOLVLM
from vlmcli.model.profile import load_profile
from vlmcli.model.weights import file_on_disk
from vlmcli.pipeline.engines.openai_client import ChatClient, family_messages
from vlmcli.pipeline.page import generate_bands, page_deadline_s
from vlmcli.pipeline.prefetch import in_order
from vlmcli.pipeline.results import PageFailure, PageResult, page_result
from vlmcli.progress import Progress
from vlmcli.specs import DEFAULT_MODEL, EngineSpec, ModelSpec, RunSpec

UNSTATED_EDGE_PX = 2048  # SmolVLM's processor edge, for a server and checkpoint that do not say theirs


class ServerEngine:
    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.client: ChatClient | None = None
        self.model_id = ""
        self.max_input_px = UNSTATED_EDGE_PX
        self.resolution: dict = {}
        self.family: Family = SMOLVLM

    def start(self, run: RunSpec, progress: Progress) -> None:
        """Reach the server, pick its model, and learn the edge to render pages at and the family whose card the
        pages are asked as: the one vlmcli serve names, else --family or the checkpoint's files (load_profile)."""
        self.client = ChatClient(self.spec, timeout_s=run.page_timeout_s)
        entry = served_model(self.client.models(), run.model.model_id, self.spec.server_url or "", progress)
        self.model_id = entry["id"]
        served = entry.get("vlmcli") or {}
        self.max_input_px = run.split.longest_edge_px or served.get("max_input_px") or \
            checkpoint_edge_px(run.model) or UNSTATED_EDGE_PX
        self.resolution = {"longest_edge_px": served.get("longest_edge_px", self.max_input_px),
                           "split": served.get("split")}
        self.family = served_family(served, run.model)
        progress.note(f"pages go to {self.spec.server_url} ({self.model_id}), {self.spec.concurrency} at a time, "
                      f"rendered for {self.max_input_px} px", detail=True)

    def transcribe(self, todo: list[PageRef], instruction: str, run: RunSpec) -> Iterator[PageResult | PageFailure]:
        yield from in_order(lambda ref: self.transcribe_page(ref, instruction, run), todo, self.spec.concurrency)

    def transcribe_page(self, ref: PageRef, instruction: str, run: RunSpec) -> PageResult | PageFailure:
        """One page: its bands, each a chat completion (a loop decoded once more with a penalty), merged."""
        deadline_s = page_deadline_s(run)
        try:
            bands = page_images(ref, self.max_input_px, run.split, run.pdf)
            generations, passes, decoding = generate_bands(
                lambda band, spec: self.chat([band], instruction, spec, deadline_s), bands, run, ref, deadline_s)
        except VlmcliError as error:
            return PageFailure(ref.source, ref.page_number, error, attempts=getattr(error, "attempts", 1))
        return page_result(ref, generations, passes, decoding, self.resolution)

    def chat(self, images: list, text: str, spec, deadline_s: float | None = None, on_text=None):
        """One question about `images` to the server's model."""
        return self.client.chat(self.model_id, family_messages(self.family, images, text), spec, on_text=on_text,
                                deadline_s=deadline_s, keep_special_tokens=self.family.keep_special_tokens)


def served_model(models: list[dict], wanted: str, url: str, progress: Progress) -> dict:
    """The server's entry for `wanted`; with the default model not given, the one model a server serves."""
    for entry in models:
        if entry.get("id") == wanted:
            return entry
    if wanted == DEFAULT_MODEL and len(models) == 1:
        progress.note(f"{url} serves {models[0]['id']}: reading with it", detail=True)
        return models[0]
    served = ", ".join(str(entry.get("id")) for entry in models) or "none"
    raise UsageError(f"{url} does not serve {wanted} (it serves: {served})", hint="pass --model with one of those")


def served_family(served: dict, spec: ModelSpec) -> Family:
    """The family a server's model is asked as: --family, else the one vlmcli serve names (where this vlmcli knows
    it), else the checkpoint's files as `load_profile` finds them (another server: vLLM, llama-server...)."""
    known = {family.name: family for family in all_families()}
    if not spec.family and served.get("family") in known:
        return known[served["family"]]
    return load_profile(spec).family


def checkpoint_edge_px(spec: ModelSpec) -> int | None:
    """The longest edge the checkpoint's processor takes, where its files are on this machine: in
    processor_config.json (transformers 5 saves the image processor there) or preprocessor_config.json."""
    for name, section in (("processor_config.json", "image_processor"), ("preprocessor_config.json", None)):
        path = file_on_disk(spec, name)
        try:
            config = json.loads(path.read_text(encoding="utf-8")) if path is not None else {}
        except (OSError, ValueError):
            continue
        edge = ((config.get(section) or {}) if section else config).get("size", {}).get("longest_edge")
        if isinstance(edge, int):
            return edge
    return None
