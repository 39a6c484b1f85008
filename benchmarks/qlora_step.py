"""Step time and peak memory of stage-3 training steps on the SmolVLM-256M stand-in (CPU or GPU).

    .venv/bin/python benchmarks/qlora_step.py [--checkpoint DIR] [--quantize 4bit|none] [--steps 3]

One dense A4 page (13 sub-images, 832 visual tokens) with its transcription as
the target, batch 1, gradient checkpointing, through `finetune.train.run`, so
the numbers are those of `vlmcli finetune --stage 3`.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pages import text_page  # noqa: E402 - the same dense page as the speed benchmark

from finetune.stages import resolve  # noqa: E402
from finetune.train import FinetuneRequest, run  # noqa: E402
from vlmcli.config import ModelSpec, Quant  # noqa: E402


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
    step_times: list[float] = []
    last = [time.perf_counter()]

    def on_event(name: str, details: dict) -> None:
        if name in ("started", "step"):
            now = time.perf_counter()
            if name == "step":
                step_times.append(now - last[0])
            last[0] = now

    request = FinetuneRequest(stage=stage, model=ModelSpec(model_id=args.checkpoint, quantize=Quant(args.quantize)),
                              data=work / "train.jsonl", output=work / "run")
    summary = run(request, on_event)
    result = {"quantize": args.quantize, "step_seconds": [round(t, 2) for t in step_times],
              "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
              "trainable_parameters": summary["trainable_parameters"], "loss": summary["train_loss"]}
    try:
        import torch

        if torch.cuda.is_available():
            result["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
