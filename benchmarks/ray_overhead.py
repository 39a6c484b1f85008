"""What Ray costs per page against the local runner, pages/s with 1 and 2 actors, and a 1M-page run on paper
(issue 18).

    python -m benchmarks.ray_overhead [--pages 48] [--new-tokens 16] [--checkpoint DIR] [--out FILE]

In one process, side by side and in this order: the local runner (`run_ocr`, torch
on 1 thread), Ray with 1 actor, Ray with 2 actors (each actor reserves half a CPU,
so torch gets 1 thread: Ray sets OMP_NUM_THREADS to an actor's whole CPUs, at least
1), the local runner again (to see the machine drift), and the local runner on
every core. Each reads the same pages into its own folder through the real job
(manifest, files); Ray's outputs are checked equal to the local run's. The cost
of a page is taken in the steady state: the time between the pages that came back
halfway and last, over the pages between them (model loads, Ray's actor start-up
and the first pages' burst stay out); the rest of the wall time is the fixed cost.
The model is the tiny test checkpoint unless `--checkpoint` names another (its
pages take milliseconds, so what is left is the overhead). The projection of a
1M-page run takes a GPU's pages/s from the README's "On a GPU" table
(`--gpu-pages-per-s`) and adds the overhead per page measured here.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPU_PAGES_PER_S = 2.83  # README "On a GPU": bf16, --batch-size 32, 128 new tokens per dense A4 page, one H200


def make_pages(folder: Path, count: int) -> Path:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        image = Image.new("RGB", (320, 240), "white")
        ImageDraw.Draw(image).text((16, 16), f"invoice {n:04d} total {n * 3.25:.2f}", fill="black")
        image.save(folder / f"p{n:04d}.png")
    return folder


def request(checkpoint: Path, pages: Path, out: Path, new_tokens: int):
    from vlmcli.jobs.ocr import OcrRequest
    from vlmcli.specs import DType, GenerationSpec, ModelSpec, OutputFormat, RunSpec

    run = RunSpec(model=ModelSpec(model_id=str(checkpoint), offline=True, dtype=DType.float32),
                  generation=GenerationSpec(max_new_tokens=new_tokens, min_new_tokens=new_tokens))
    return OcrRequest(inputs=(pages,), instruction="Read.", run=run, out_dir=out, output_format=OutputFormat.text)


class Clock:
    """The Progress protocol, keeping when each page came back."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def loading_model(self, model_id): pass

    def model_loaded(self): pass

    def started(self, total, unit, done=0): pass

    def note(self, text, *, detail=False): pass

    def advanced(self, done, metrics=None) -> None:
        self.times.append(time.perf_counter())


def timed(name: str, call, pages_folder: Path, pages: int) -> dict:
    """Seconds per page in the steady state (second half of the pages), and what the run paid besides."""
    clock = Clock()
    start = time.perf_counter()
    summary = call(pages_folder, clock)
    wall_s = time.perf_counter() - start
    assert summary.pages_ok == pages, (name, summary.line())
    half = pages // 2
    s_per_page = (clock.times[-1] - clock.times[half - 1]) / (pages - half)
    return {"name": name, "wall_s": wall_s, "fixed_s": wall_s - pages * s_per_page, "pages_per_s": 1 / s_per_page,
            "s_per_page": s_per_page}


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".") and p.suffix == ".txt"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=48)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--checkpoint", type=Path, help="default: the tiny test checkpoint, built on the spot")
    parser.add_argument("--gpu-pages-per-s", type=float, default=GPU_PAGES_PER_S)
    parser.add_argument("--out", type=Path, default=HERE / "ray-last-run.txt")
    args = parser.parse_args()

    import ray
    import torch

    from vlmcli.jobs.ocr import run_ocr
    from vlmcli.jobs.ray_runner import RaySpec, run_ocr_on_ray

    work = Path(tempfile.mkdtemp(prefix="vlmcli-ray-bench-"))
    checkpoint = args.checkpoint
    if checkpoint is None:
        from tools.models.build import build_test_checkpoint

        checkpoint = build_test_checkpoint(work / "tiny", "idefics3")
    pages = make_pages(work / "pages", args.pages)
    cores = os.cpu_count() or 1
    rows, runs = [], iter(range(1000))

    def local(threads: int):
        def call(pages: Path, clock: Clock):
            torch.set_num_threads(threads)
            return run_ocr(request(checkpoint, pages, work / f"out{next(runs)}-local{threads}", args.new_tokens),
                           write=lambda t: None, progress=clock)
        return call

    def on_ray(actors: int):
        return lambda pages, clock: run_ocr_on_ray(
            request(checkpoint, pages, work / f"out{next(runs)}-ray{actors}", args.new_tokens),
            RaySpec(actors=actors, actor_cpus=0.5), write=lambda t: None, progress=clock)

    start = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, logging_level=logging.WARNING)
    ray_init_s = time.perf_counter() - start
    rows.append(timed("local runner, 1 thread", local(1), pages, args.pages))
    rows.append(timed("Ray, 1 actor (1 thread)", on_ray(1), pages, args.pages))
    rows.append(timed("Ray, 2 actors (1 thread each)", on_ray(2), pages, args.pages))
    rows.append(timed("local runner, 1 thread, again", local(1), pages, args.pages))
    rows.append(timed(f"local runner, {cores} threads", local(cores), pages, args.pages))
    ray.shutdown()
    outputs = [files(folder) for folder in sorted(work.glob("out*"))]
    same = all(output == outputs[0] for output in outputs) and len(outputs[0]) == args.pages

    local_s = (rows[0]["s_per_page"] + rows[3]["s_per_page"]) / 2
    overhead_s = rows[1]["s_per_page"] - local_s
    lines = [f"# python -m benchmarks.ray_overhead --pages {args.pages} --new-tokens {args.new_tokens}   "
             f"({datetime.date.today()}, {platform.machine()} {cores} cores, shared machine, load average "
             f"{os.getloadavg()[0]:.1f} at the end; checkpoint "
             f"{'tiny test' if args.checkpoint is None else checkpoint}; ray {ray.__version__}, torch "
             f"{torch.__version__})",
             f"ray.init: {ray_init_s:.1f} s; the outputs of every run equal each other's: {same}",
             f"{'':34}{'wall_s':>11}{'fixed_s':>9}{'pages/s':>9}{'ms/page':>9}"]
    lines += [f"{r['name']:34}{r['wall_s']:11.1f}{r['fixed_s']:9.1f}{r['pages_per_s']:9.1f}"
              f"{r['s_per_page'] * 1000:9.1f}" for r in rows]
    lines.append(f"Ray's overhead per page (1 actor against the mean of the two 1-thread local runs): "
                 f"{overhead_s * 1000:.1f} ms; 2 actors / 1 actor: {rows[2]['pages_per_s'] / rows[1]['pages_per_s']:.2f}x")
    gpu_s = 1 / args.gpu_pages_per_s + max(overhead_s, 0)
    lines.append(f"1M pages at {args.gpu_pages_per_s} pages/s per GPU plus that overhead: "
                 f"{1e6 * gpu_s / 3600:.0f} GPU-hours")
    lines += [f"  on {gpus:>3} GPUs: {1e6 * gpu_s / gpus / 3600:7.1f} h of wall time (+ one actor start-up, "
              f"{rows[1]['fixed_s']:.0f} s here)" for gpus in (1, 8, 64)]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.write_text(text)


if __name__ == "__main__":
    main()
