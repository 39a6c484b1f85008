"""`vlmcli ocr --ray`: the same durable job, its pages read by Ray Data actors on a cluster.

The driver (this process) lists the inputs, expands their pages, skips those a
manifest has, and writes everything: manifests, failure report, output files.
The pages go to `map_batches` with a callable class (jobs/ray_actor.py) that
loads the model once per actor; answers stream back in any order, are recorded
as they arrive, and a document's file is written once all its pages are back,
under the name a local run gives it. Ray's fault tolerance does the rest: a dead
actor is restarted and its unfinished batches run again (their answers had not
been sent, so none arrives twice). A page's error comes back as a failure record.

Ray is imported only here, and only when `--ray` is given.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from vlmcli.errors import DependencyError, UsageError
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs.ocr import Job, OcrRequest, OcrSummary
from vlmcli.jobs.ray_actor import PageReader, decode, page_row
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.pipeline.transcribe import plan_pages
from vlmcli.progress import NullProgress, Progress

INSTALL_HINT = "pip install 'vlmcli[ray]'"
MAX_BLOCKS = 10_000  # pages are cut into at most this many blocks: a retried block redoes at most 1/MAX_BLOCKS


@dataclass(frozen=True)
class RaySpec:
    """Where and with how many actors (None: decided from the cluster's resources)."""

    address: str = "auto"  # auto: the running cluster; local: start one here; else a cluster address
    actors: int | None = None
    actor_cpus: float | None = None
    actor_gpus: float | None = None


def run_ocr_on_ray(request: OcrRequest, spec: RaySpec, write: Callable[[str], None],
                   progress: Progress | None = None,
                   on_failure: Callable[[PageFailure], None] = lambda failure: None, read=None) -> OcrSummary:
    """`run_ocr` with the pages read on Ray: the same files, manifest lines, failure records and exit code.
    `read` yields (position, answer) as pages come back (default: vlmcli's actors; jobs/ray_vllm.py: vLLM's)."""
    if request.out_dir is None:
        raise UsageError("--ray needs -o/--output: documents are written to files as their pages come back")
    ray = _import_ray()
    progress = progress or NullProgress()
    with Job(request, write, progress, on_failure) as job:
        refs = []
        for item in plan_pages(job.documents, request.pages, request.run):
            if isinstance(item, PageFailure):
                job.take(item)
            else:
                refs.append(item)
        stored = [job.ledger.reuse(ref) for ref in refs]
        job.planned(refs)
        done = sum(item is not None for item in stored)
        progress.started(len(refs), "pages", done=done)
        for item in stored:
            if item is not None:
                job.take(item)  # a document all of whose pages are stored is written now
        todo = [position for position, item in enumerate(stored) if item is None]
        answered: set[int] = set()
        if todo:
            with _connected(ray, spec.address):
                for position, item in (read or _read_on_ray)(ray, refs, todo, request, spec, progress):
                    if position in answered:
                        continue
                    answered.add(position)
                    stops = job.take(item)  # a document is written when its last page comes back
                    progress.advanced(done + len(answered))
                    if stops:
                        return job.summary
        if len(answered) < len(todo):  # Ray raises when a block fails for good (max_errored_blocks = 0): a bug
            raise RuntimeError(f"Ray Data returned no answer for {len(todo) - len(answered)} page(s) without "
                               "raising an error")
    return job.finish()


def _read_on_ray(ray, refs: list[PageRef], todo: list[int], request: OcrRequest, spec: RaySpec,
                 progress: Progress) -> Iterator[tuple[int, PageResult | PageFailure]]:
    """(position, answer) for every page of `todo`, in the order they come back."""
    context = ray.data.DataContext.get_current()
    context.max_errored_blocks = 0  # a block that fails for good stops the job: never a page silently lost
    context.enable_progress_bars, context.print_on_execution_start = False, False  # the driver reports progress
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    logging.getLogger("ray.data._internal.execution.streaming_executor").setLevel(logging.WARNING)  # "finished"
    actors, cpus, gpus = _resources(ray, spec)
    progress.note(f"Ray: {len(todo)} page(s) to {actors} actor(s), {cpus:g} CPU and {gpus:g} GPU each", detail=True)
    rows = [page_row(position, refs[position]) for position in todo]
    pages_per_call = request.run.batch_size
    blocks = min(math.ceil(len(rows) / pages_per_call), MAX_BLOCKS)
    # Ray Data's actor pools restart dead actors and retry their tasks without limit (its defaults).
    dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        PageReader, fn_constructor_kwargs={"instruction": request.instruction, "run": request.run},
        batch_size=pages_per_call, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus, num_gpus=gpus)
    for row in dataset.iter_rows():
        position = int(row["position"])
        yield position, decode(row["item"], refs[position])


def _resources(ray, spec: RaySpec) -> tuple[int, float, float]:
    """Actors, CPUs and GPUs per actor: one GPU each on GPU clusters, as many actors as GPUs; else one."""
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    gpus = spec.actor_gpus if spec.actor_gpus is not None else (1.0 if cluster_gpus else 0.0)
    actors = spec.actors or (max(1, int(cluster_gpus // gpus)) if gpus else 1)
    return actors, spec.actor_cpus if spec.actor_cpus is not None else 1.0, gpus


@contextmanager
def _connected(ray, address: str) -> Iterator[None]:
    """Join (or start) the cluster unless this process is already connected; leave it as found."""
    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address="local" if address == "local" else address, logging_level=logging.WARNING,
                 include_dashboard=False)
    except ConnectionError as exc:
        raise DependencyError(f"--ray {address}: {exc}",
                              hint="start a cluster (ray start --head), give its address, or use --ray local") from None
    try:
        yield
    finally:
        ray.shutdown()


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise DependencyError("--ray needs Ray Data, which is not installed", hint=INSTALL_HINT) from None
    return ray
