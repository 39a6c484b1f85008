"""What an A4 page costs on a CPU, per model family: vlmcli against plain transformers, one machine, one run.

    .venv/bin/python -m benchmarks.families [--rounds 3] [--new-tokens 32] [--dtype float32]
        [--only smolvlm,lighton_ocr] [--standins /tmp/vlmcli-standins] [--out benchmarks/families.json]

Each family runs on an exact-architecture stand-in (random weights, the real checkpoint's dimensions and processor
settings, so a page costs the real number of visual tokens: `python -m tools.models standin ...`, built if
missing) on one dense A4 text page at 200 dpi (benchmarks/pages.py). Every measurement is its own process, timed
from its start to its exit by this parent (`wall_s`: imports, load, the page, the output), and reports its load,
its page and its peak RSS; both sides are forced to the same number of new tokens (min = max; vlmcli's loop guard
off for that reason). vlmcli runs `vlmcli ocr PAGE` as its console script does (the job, not only the model);
plain transformers runs the model card's recipe (tools/models/recipes.py: AutoModelForImageTextToText, the card's
prompt through the processor, `generate`). Rounds alternate which side goes first, and each round measures its
own float32 floor: the best rate of the family's largest linear products; a page's floor is its linear
arithmetic (counted on the plain side by hooks on every nn.Linear, the same page and tokens) at that rate.
Run from the repository root; the ISA is what the environment holds torch to (ATEN_CPU_CAPABILITY=avx2 ...).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import families_children
from benchmarks.speed_report import machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The stand-ins measured: the default, the Docling model at the same cost, and the ~1B OCR models.
FAMILIES = ("smolvlm", "granite_docling_258m", "lighton_ocr", "paddleocr_vl", "glm_ocr")
SIDES = ("vlmcli", "plain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--only", help="comma-separated families of " + ", ".join(FAMILIES))
    parser.add_argument("--standins", type=Path, default=Path("/tmp/vlmcli-standins"))
    parser.add_argument("--out", type=Path, default=HERE / "families.json")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, family, checkpoint, page, rest = args.child
        tokens, dtype = rest.split(":")
        result = families_children.CHILDREN[side](family, checkpoint, page, int(tokens), dtype)
        result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        return print(json.dumps(result))
    chosen = args.only.split(",") if args.only else list(FAMILIES)
    unknown = set(chosen) - set(FAMILIES)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {', '.join(FAMILIES)}")
    from benchmarks.pages import text_page

    args.standins.mkdir(parents=True, exist_ok=True)
    page = text_page(args.standins / "dense-a4-200dpi.png", dpi=200)
    checkpoints = {family: _standin(family, args.standins) for family in chosen}
    rounds = []
    for number in range(args.rounds):
        found: dict[str, dict] = {}
        for family in chosen:
            sides = SIDES if number % 2 == 0 else SIDES[::-1]
            for side in (*sides, "floor"):
                found[f"{family} {side}"] = row = _run_child(side, family, checkpoints[family], page,
                                                              args.new_tokens, args.dtype)
                print(f"round {number + 1} {family} {side}: {json.dumps(row)}", file=sys.stderr, flush=True)
        rounds.append(found)
    report = families_children.report(rounds, chosen, args.new_tokens, args.dtype)
    report["machine"] = machine()
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["families"], indent=1))


def _run_child(side: str, family: str, checkpoint: Path, page: Path, tokens: int, dtype: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.families", "--child", side, family, str(checkpoint), str(page),
               f"{tokens}:{dtype}"]
    started = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT)
    wall_s = time.perf_counter() - started
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": wall_s}


def _standin(family: str, folder: Path) -> Path:
    """The family's stand-in checkpoint, built on first use."""
    out = folder / family
    if not (out / "config.json").exists():
        recipe = {"smolvlm": ["standin", str(out), "--no-check"],
                  "granite_docling_258m": ["granite-standin", str(out)]}.get(
            family, ["standin", "--family", family, str(out), "--no-check"])
        subprocess.run([sys.executable, "-m", "tools.models", *recipe], check=True, cwd=ROOT)
    return out


if __name__ == "__main__":
    main()
