"""`vlmcli ocr --ray --engine vllm`: the durable job of jobs/ray_runner.py, its pages transcribed by Ray Data's LLM
processor on vLLM (`ray.data.llm`) instead of vlmcli's actors.

Three stages: CPU tasks render each page's bands (as PNG data URIs, so only
strings cross the cluster), vLLM replicas transcribe every band, and the driver
merges a page's bands once all are back and hands the page to `Job.take`, as
every other reader does. A band's loop is cut where it starts (finish reason
"repetition"); the penalty retry of the other engines is not run here.

Imported only for `--ray --engine vllm`; needs `ray[llm]` and vLLM on the cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from vlmcli.errors import DependencyError, UsageError, VlmcliError
from vlmcli.inputs.documents import PageRef
from vlmcli.inputs.pages import page_images
from vlmcli.jobs import ray_runner
from vlmcli.jobs.ocr import OcrRequest, OcrSummary
from vlmcli.jobs.ray_actor import page_row
from vlmcli.model.families import RAW, Family
from vlmcli.pipeline.engines.openai_client import RemoteGeneration, image_part
from vlmcli.pipeline.results import PageFailure, PageResult, page_result
from vlmcli.progress import Progress
from vlmcli.specs import RunSpec

INSTALL_HINT = "pip install 'ray[llm]' vllm (on every node)"
UNSTATED_EDGE_PX = 2048


def run_ocr_on_ray_vllm(request: OcrRequest, spec: ray_runner.RaySpec, write: Callable[[str], None],
                        progress: Progress | None = None,
                        on_failure: Callable[[PageFailure], None] = lambda failure: None) -> OcrSummary:
    if request.family.layout == RAW:
        raise UsageError(f"--ray --engine vllm asks through the chat template, which the {request.family.name} "
                         "family's checkpoints do not have",
                         hint="use --ray with the transformers engine (leave out --engine)")
    return ray_runner.run_ocr_on_ray(request, spec, write, progress, on_failure, transcribe=_transcribe_with_vllm)


def _transcribe_with_vllm(cluster, refs: list[PageRef], todo: list[int], request: OcrRequest,
                          progress: Progress) -> Iterator[tuple[int, PageResult | PageFailure]]:
    """(position, answer) for every page of `todo`, transcribed by vLLM replicas on the cluster (joined as needed)."""
    family = request.family
    cluster.connect()
    ray, spec = cluster.ray, cluster.spec
    try:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig
    except ImportError as exc:
        raise DependencyError(f"--ray --engine vllm needs Ray Data LLM and vLLM ({exc})", hint=INSTALL_HINT) from None
    run = request.run
    edge_px = run.split.longest_edge_px or UNSTATED_EDGE_PX
    actors, _, gpus = ray_runner._resources(ray, spec)
    config = vLLMEngineProcessorConfig(
        model_source=run.model.model_id, engine_kwargs={"limit_mm_per_prompt": {"image": 1}, "seed": 0},
        concurrency=actors, batch_size=max(16, run.batch_size), prepare_multimodal_stage=True,
        accelerator_type=None, should_continue_on_error=True)
    # The family's special tokens are its text where it keeps them (DocTags, DocLang, grounding tags)
    sampling = {"temperature": 0.0, "max_tokens": run.generation.max_new_tokens,
                "skip_special_tokens": not family.keep_special_tokens}
    processor = build_processor(
        config,
        preprocess=lambda row: {**row, "messages": _messages(family, row["image"], request.instruction),
                                "sampling_params": sampling},
        postprocess=lambda row: {"position": row["position"], "band": row["band"], "bands": row["bands"],
                                 "text": row.get("generated_text") or "", "error": row.get("__inference_error__") or "",
                                 "new_tokens": int(row.get("num_generated_tokens") or 0),
                                 "prompt_tokens": int(row.get("num_input_tokens") or 0)})
    progress.note(f"Ray + vLLM: {len(todo)} page(s) to {actors} replica(s), {gpus:g} GPU each", detail=True)
    rows = ray.data.from_items([page_row(position, refs[position]) for position in todo])
    bands = rows.flat_map(lambda row: _render(row, edge_px, run))
    pending: dict[int, dict[int, dict]] = {}
    for row in processor(bands).iter_rows():
        position = int(row["position"])
        ref = refs[position]
        if row["bands"] == 0:  # the page could not be rendered
            yield position, PageFailure(ref.source, ref.page_number, VlmcliError(row["error"]))
            continue
        pending.setdefault(position, {})[int(row["band"])] = row
        if len(pending[position]) == int(row["bands"]):
            yield position, _page(ref, [pending.pop(position)[band] for band in range(int(row["bands"]))], edge_px)


def _render(row: dict, edge_px: int, run: RunSpec) -> list[dict]:
    """A page's bands as rows (on a CPU task); a page that cannot be rendered is one row with its error."""
    ref = PageRef(Path(row["path"]), int(row["page_index"]), int(row["page_count"]), bool(row["is_pdf"]))
    try:
        bands = page_images(ref, edge_px, run.split, run.pdf)
    except VlmcliError as error:
        return [{**row, "band": 0, "bands": 0, "image": "", "error": error.message}]
    return [{**row, "band": index, "bands": len(bands), "image": _data_uri(band), "error": ""}
            for index, band in enumerate(bands)]


def _messages(family: Family, image: str, instruction: str | None) -> list[dict]:
    """The family's turns (model/families) for one band, given as a data URI."""
    return family.messages_with(instruction, [image], lambda url: {"type": "image_url", "image_url": {"url": url}})


def _page(ref: PageRef, rows: list[dict], edge_px: int) -> PageResult | PageFailure:
    failed = next((row["error"] for row in rows if row["error"]), None)
    if failed:
        return PageFailure(ref.source, ref.page_number, VlmcliError(f"{ref.source}: vLLM: {failed}"))
    generations = [RemoteGeneration(row["text"].strip(), 0, row["prompt_tokens"], row["new_tokens"], 0.0, "stop")
                   for row in rows]
    return page_result(ref, generations, 1, "greedy", {"longest_edge_px": edge_px, "split": None})


def _data_uri(image) -> str:
    return image_part(image)["image_url"]["url"]
