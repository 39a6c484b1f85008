"""Step time and peak memory of stage-3 training steps on the SmolVLM-256M stand-in (CPU or GPU).

    .venv/bin/python -m benchmarks.qlora_step [--checkpoint DIR] [--quantize 4bit|none] [--steps 3]

One dense A4 page (13 sub-images, 832 visual tokens) with its transcription as
the target, batch 1, gradient checkpointing, through `vlmcli.finetune.train.run`,
so the numbers are those of `vlmcli finetune --stage 3`. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from vlmcli.finetune.mixture import Source
from vlmcli.finetune.stages import resolve
from vlmcli.finetune.request import FinetuneRequest
from vlmcli.finetune.train import run

from benchmarks.pages import text_page  # the same dense page as the speed benchmark
from vlmcli.progress import NullProgress
from vlmcli.specs import ModelSpec, Quant


class StepTimes(NullProgress):
    """Wall time of each training step, from the progress reports of `run`."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._last = time.perf_counter()

    def started(self, total: int, unit: str, done: int = 0) -> None:
        self._last = time.perf_counter()

    def advanced(self, done: int, metrics=None) -> None:
        if metrics is None:  # a step ended (a logged loss repeats the step's count)
            now = time.perf_counter()
            self.seconds.append(now - self._last)
            self._last = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="/tmp/standin")
    parser.add_argument("--quantize", default="4bit", choices=["4bit", "8bit", "none"])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vlmcli-qlora-"))
    page = text_page(work / "page.png")
    target = "invoice total amount due date reference payment account balance " * 20
    (work / "train.jsonl").write_text(json.dumps({"image": page.name, "text": target}) + "\n")
    stage = resolve(3, {}, {"max_steps": args.steps, "batch_size": 1, "grad_accum": 1, "save_steps": 10**6,
                            "logging_steps": 1})
    steps = StepTimes()
    request = FinetuneRequest(stage=stage, model=ModelSpec(model_id=args.checkpoint, quantize=Quant(args.quantize)),
                              data=(Source(work / "train.jsonl"),), output=work / "run")
    summary = run(request, steps)
    result = {"quantize": args.quantize, "step_seconds": [round(t, 2) for t in steps.seconds],
              "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
              "trainable_parameters": summary.trainable_parameters, "loss": summary.train_loss}
    try:
        import torch

        if torch.cuda.is_available():
            result["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
