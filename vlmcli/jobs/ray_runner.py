"""`vlmcli ocr --ray`: the same durable job, its pages transcribed by Ray Data actors on a cluster.

The driver (this process) lists the inputs, expands their pages, skips those a
manifest has, and writes everything: manifests, failure report, output files.
The pages go to `map_batches` with a callable class (jobs/ray_actor.py) that
loads the model once per actor; answers stream back in any order, are recorded
as they arrive, and a document's file is written once all its pages are back,
under the name a local run gives it.

Faults, with Ray Data's own mechanisms: an actor that dies (out of memory, a
native crash) is restarted, and the task it was running is tried again on it, up
to `RaySpec.page_attempts` times in all (Ray's max_task_retries); a task that
still fails is dropped (Ray Data's max_errored_blocks, unlimited here) and its
pages become failure records (`category: crash`) while the job goes on. A task
holds one page, unless `--batch-size` or a job of over MAX_BLOCKS pages put
several in one: then the pages lost with it are transcribed once more one per task, so
that only the page that kills its actor is recorded as a crash. Each actor runs
one task at a time, so a death is charged to the task that caused it. Any other
exception a page raises comes back from the actor as that page's failure record.

The fingerprint names the device, dtype and levers of the actors, not of this
process: a Ray task placed as an actor resolves them before the manifest is read
(so the cluster is joined before the done pages are skipped), and each answer
carries its actor's own, under which it is recorded.

Ray is imported only here, and only when `--ray` is given.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from vlmcli.errors import CrashError, DependencyError, UsageError, VlmcliError
from vlmcli.inputs.documents import PageRef
from vlmcli.jobs.ocr import Job, OcrRequest, OcrSummary, run_settings
from vlmcli.jobs.ray_actor import PageTranscriber, decode, node_settings, page_row
from vlmcli.model.levers import registry
from vlmcli.model.runtime import settings_line
from vlmcli.pipeline.results import PageFailure, PageResult
from vlmcli.pipeline.transcribe import plan_pages
from vlmcli.progress import NullProgress, Progress

INSTALL_HINT = "pip install 'vlmcli[ray]'"
MAX_BLOCKS = 10_000  # pages are cut into at most this many blocks (tasks): more would weigh on Ray's scheduler
PAGE_ATTEMPTS = 2  # a page tried this many times by an actor that died each time is a failure record


@dataclass(frozen=True)
class RaySpec:
    """Where and with how many actors (None: decided from the cluster's resources)."""

    address: str = "auto"  # auto: the running cluster; local: start one here; else a cluster address
    actors: int | None = None
    actor_cpus: float | None = None
    actor_gpus: float | None = None
    page_attempts: int = PAGE_ATTEMPTS  # tries of a page whose actor dies, before it is a `crash` failure record


def run_ocr_on_ray(request: OcrRequest, spec: RaySpec, write: Callable[[str], None],
                   progress: Progress | None = None,
                   on_failure: Callable[[PageFailure], None] = lambda failure: None, transcribe=None) -> OcrSummary:
    """`run_ocr` with the pages transcribed on Ray: the same files, manifest lines, failure records and exit code.
    `transcribe` yields (position, answer) as pages come back (default: vlmcli's actors; jobs/ray_vllm.py: vLLM's)."""
    if request.out_dir is None:
        raise UsageError("--ray needs -o/--output: documents are written to files as their pages come back")
    if spec.page_attempts < 1:
        raise UsageError(f"page_attempts must be at least 1, not {spec.page_attempts}")
    ray = _import_ray()
    progress = progress or NullProgress()
    cluster = _Cluster(ray, spec, request, registry.skipped(), progress)  # the switch's typos fail before Ray starts
    with cluster, Job(request, write, progress, on_failure, resolved=cluster.actor_settings) as job:
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
        transcribed = (_transcribe_on_ray(cluster, refs, todo, request, progress) if transcribe is None else
                       ((position, item, None) for position, item in transcribe(cluster, refs, todo, request,
                                                                                  progress)))
        for position, item, settings in transcribed:
            if position in answered:
                continue
            answered.add(position)
            stops = job.take(item, cluster.settings_of_answer(settings, job))  # its document is written when due
            progress.advanced(done + len(answered))
            if stops:
                return job.summary
        if len(answered) < len(todo):  # every page planned gets an answer or a failure record: this is a bug
            raise RuntimeError(f"Ray Data returned no answer for {len(todo) - len(answered)} page(s) without "
                               "raising an error")
    return job.finish()


class _Cluster:
    """The Ray cluster, joined when first needed and left as found, and the settings its actors transcribe with."""

    def __init__(self, ray, spec: RaySpec, request: OcrRequest, skip_levers: frozenset[str],
                 progress: Progress) -> None:
        self.ray, self.spec, self.request, self.skip_levers, self.progress = ray, spec, request, skip_levers, progress
        self.actors, self.cpus, self.gpus = 0, 0.0, 0.0
        self._started, self._settings = False, None
        self._noted: set[str] = set()

    def __enter__(self) -> _Cluster:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._started:
            self.ray.shutdown()

    def connect(self) -> None:
        if self.actors:
            return
        if not self.ray.is_initialized():
            try:
                self.ray.init(address="local" if self.spec.address == "local" else self.spec.address,
                              logging_level=logging.WARNING, include_dashboard=False)
            except ConnectionError as exc:
                raise DependencyError(f"--ray {self.spec.address}: {exc}",
                                      hint="start a cluster (ray start --head), give its address, or use --ray "
                                           "local") from None
            self._started = True
        self.actors, self.cpus, self.gpus = _resources(self.ray, self.spec)

    def actor_settings(self) -> dict:
        """The device type, dtype and levers an actor resolves to, from a Ray task given an actor's resources."""
        if self._settings is None:
            self.connect()
            probe = self.ray.remote(node_settings).options(num_cpus=self.cpus, num_gpus=self.gpus)
            try:
                self._settings = self.ray.get(probe.remote(self.request.run.model, self.skip_levers))
            except Exception as exc:  # Ray wraps the task's exception; a VlmcliError is the user's to fix
                cause = getattr(exc, "cause", exc)
                if isinstance(cause, VlmcliError):
                    raise cause from None
                raise
            self.progress.note(f"Ray actors: family: {self.request.family.name}; {settings_line(self._settings)}",
                               detail=True)
        return self._settings

    def settings_of_answer(self, answer_settings: dict | None, job: Job) -> dict | None:
        """An answer's run settings where its actor's differ from those the run expected (else None)."""
        if answer_settings is None or answer_settings == self.actor_settings():
            return None
        line = settings_line(answer_settings)
        if line not in self._noted:
            self._noted.add(line)
            self.progress.note(f"Ray: an actor reads with {line}, not as expected with "
                               f"{settings_line(self.actor_settings())} (nodes of another kind); its pages are "
                               "recorded under the settings they were read with")
        return run_settings(job.request, answer_settings)


def _transcribe_on_ray(cluster: _Cluster, refs: list[PageRef], todo: list[int], request: OcrRequest,
                       progress: Progress) -> Iterator[tuple[int, PageResult | PageFailure, dict | None]]:
    """(position, answer, its actor's settings) for every page of `todo`, in the order they come back; a page
    whose task failed for good (its actor died every time) comes last, as a `crash` failure record."""
    if not todo:
        return
    cluster.actor_settings()  # joined, and the actors' settings known, before any actor starts
    context = cluster.ray.data.DataContext.get_current()
    context.max_errored_blocks = -1  # a task that fails for good is dropped; its pages are recorded as crashes
    context.enable_progress_bars, context.print_on_execution_start = False, False  # the driver reports progress
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    logging.getLogger("ray.data._internal.execution.streaming_executor").setLevel(logging.WARNING)  # "finished"
    # Each dropped task's traceback: its pages' failure records say it, once, in the failure report.
    logging.getLogger("ray.data._internal.execution.streaming_executor_state").setLevel(logging.CRITICAL)
    progress.note(f"Ray: {len(todo)} page(s) to {cluster.actors} actor(s), {cluster.cpus:g} CPU and "
                  f"{cluster.gpus:g} GPU each", detail=True)

    def transcribe_pass(positions: list[int], blocks: int, pages_per_call: int):
        return _one_pass(cluster, refs, positions, request, blocks, pages_per_call)

    yield from _isolating_crashes(transcribe_pass, refs, todo, request.run.batch_size, cluster.spec.page_attempts,
                                  progress)


TranscribePass = Callable[[list[int], int, int], Iterator[tuple[int, PageResult | PageFailure, dict]]]


def _isolating_crashes(transcribe_pass: TranscribePass, refs: list[PageRef], todo: list[int], pages_per_call: int,
                       attempts: int, progress: Progress) -> Iterator[tuple[int, PageResult | PageFailure,
                                                                             dict | None]]:
    """Every page of `todo` through `transcribe_pass(positions, blocks, pages per call)`; pages lost with a task
    that held others are transcribed again one per task; the pages still lost are `crash` failure records."""
    pending = list(todo)
    for isolating in (False, True):
        blocks = min(math.ceil(len(pending) / pages_per_call), MAX_BLOCKS)
        returned = set()
        for position, item, settings in transcribe_pass(pending, blocks, pages_per_call):
            returned.add(position)
            yield position, item, settings
        lost = [position for position in pending if position not in returned]
        if not lost or isolating or (pages_per_call == 1 and blocks == len(pending)):
            break  # each lost page was alone in its task (up to MAX_BLOCKS tasks): it killed its actor
        progress.note(f"Ray: {len(lost)} page(s) lost with a task whose actor died; reading them again one per "
                      "task, so that only the page that kills its actor is recorded")
        pending, pages_per_call = lost, 1
    for position in lost:
        yield position, _crashed(refs[position], attempts), None


def _one_pass(cluster: _Cluster, refs: list[PageRef], positions: list[int], request: OcrRequest, blocks: int,
              pages_per_call: int) -> Iterator[tuple[int, PageResult | PageFailure, dict]]:
    ray, spec = cluster.ray, cluster.spec
    rows = [page_row(position, refs[position]) for position in positions]
    # Ray's actor fault tolerance, bounded: a dead actor is restarted (a fresh process and model load), and
    # the task it was running is tried again on it until it has been tried `page_attempts` times. These go
    # through map_batches' ray_remote_args, deprecated in Ray 2.60 with no named replacement yet.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args. is deprecated")
        dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            PageTranscriber, fn_constructor_kwargs={"instruction": request.instruction, "run": request.run,
                                               "skip_levers": cluster.skip_levers},
            batch_size=pages_per_call, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=cluster.actors, max_tasks_in_flight_per_actor=1),
            num_cpus=cluster.cpus, num_gpus=cluster.gpus, max_restarts=-1, max_task_retries=spec.page_attempts - 1)
    for row in dataset.iter_rows():
        position = int(row["position"])
        yield position, decode(row["item"], refs[position]), json.loads(row["settings"])


def _crashed(ref: PageRef, attempts: int) -> PageFailure:
    error = CrashError(f"{ref.source}: page {ref.page_number}: the Ray actor reading it died {attempts} time(s) "
                       "(out of memory, or a native crash)",
                       hint="lower --longest-edge or --batch-size, or give each actor more memory; the Ray logs "
                            "(/tmp/ray/session_latest/logs on the node) say why it died")
    return PageFailure(ref.source, ref.page_number, error, attempts=attempts)


def _resources(ray, spec: RaySpec) -> tuple[int, float, float]:
    """Actors, CPUs and GPUs per actor: one GPU each on GPU clusters, as many actors as GPUs; else one."""
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    gpus = spec.actor_gpus if spec.actor_gpus is not None else (1.0 if cluster_gpus else 0.0)
    actors = spec.actors or (max(1, int(cluster_gpus // gpus)) if gpus else 1)
    return actors, spec.actor_cpus if spec.actor_cpus is not None else 1.0, gpus


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise DependencyError("--ray needs Ray Data, which is not installed", hint=INSTALL_HINT) from None
    return ray
