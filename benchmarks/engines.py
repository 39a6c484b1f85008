"""Pages per second of `vlmcli ocr --engine vllm` against vlmcli's own batches (`--batch-size`), for a machine
with a GPU (the issue's target: 10 pages/s or more for the 256M model on one H100):

    python -m tools.models standin /tmp/standin
    python -m benchmarks.engines --checkpoint /tmp/standin --vllm-python .venv-vllm/bin/python --out engines.json

Each engine reads N and then 2N dense A4 pages in fresh processes; the steady rate is N divided by the
difference of the two wall times, so loading, compiling and warming up (vLLM spends a minute there) cancel
out. The texts of the two engines are compared page by page (greedy both: equal unless kernels round apart).
Check it works with tiny settings: --pages 2 --new-tokens 4 --device cpu (and without --vllm-python where
vLLM cannot run, which skips its row).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.pages import text_page

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--pages", type=int, default=256, help="N: each engine reads N, then 2N pages")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32, help="vlmcli's own pages per generate call")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--vllm-python", type=Path, help="a Python with vLLM and vlmcli (no row without it)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    engines = {f"transformers, --batch-size {args.batch_size}": (Path(sys.executable),
                                                                  ["--batch-size", str(args.batch_size)])}
    if args.vllm_python:
        engines["vllm"] = (args.vllm_python, ["--engine", "vllm"])
    with tempfile.TemporaryDirectory(prefix="vlmcli-engines-") as scratch:
        work = Path(scratch)
        inbox = {count: _inbox(work / f"pages-{count}", count) for count in (args.pages, 2 * args.pages)}
        rows, texts = {}, {}
        for name, (python, extra) in engines.items():
            walls = {}
            for count, folder in inbox.items():
                out = work / f"{name.split(',')[0]}-{count}"
                walls[count] = _run(python, folder, out, args, extra)
            texts[name] = sorted((p.name, p.read_text()) for p in (work / f"{name.split(',')[0]}-{2 * args.pages}")
                                 .glob("*.md"))
            steady_s = walls[2 * args.pages] - walls[args.pages]
            rows[name] = {"wall_s": {str(k): round(v, 2) for k, v in walls.items()},
                          "steady_pages_per_s": round(args.pages / steady_s, 3) if steady_s > 0 else None}
    report = {"checkpoint": str(args.checkpoint), "pages": args.pages, "new_tokens": args.new_tokens,
              "device": args.device, "rows": rows}
    if len(texts) == 2:
        first, second = texts.values()
        report["equal_pages"] = f"{sum(a == b for a, b in zip(first, second))}/{len(first)}"
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


def _inbox(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for n in range(count):
        text_page(folder / f"page{n:04d}.png", seed=n)
    return folder


def _run(python: Path, inbox: Path, out: Path, args, extra: list[str]) -> float:
    command = [str(python), "-m", "vlmcli", "ocr", str(inbox), "-o", str(out), "-f", "markdown", "--model",
               str(args.checkpoint), "--offline", "--max-new-tokens", str(args.new_tokens), "--device", args.device,
               *extra]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)}: exit {result.returncode}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
