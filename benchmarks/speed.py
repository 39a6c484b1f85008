"""The speed benchmark: vlmcli against the SmolVLM-256M-Instruct model card's snippet and other engines, one
machine, one run, alternating rounds.

    .venv/bin/python -m benchmarks.speed [--set float32|bfloat16|extra] [--rounds 5] [--new-tokens 32]
        [--checkpoint /tmp/standin] [--out benchmarks/speed.json]

Every contender runs in its own process (its peak RSS is its own) on generated pages (pages.py), forced to the
same number of new tokens (min = max), on a random-weight stand-in with SmolVLM-256M-Instruct's architecture and
processor (`python -m tools.models standin`, built if missing). Rounds alternate the contenders, so a slower spell
of the machine hits them all, in an order that moves from round to round (_rotated); each round measures its own floor (the best rate of the model's own largest
products, speed_report.gemm_shapes, all threads), and each ratio is taken within a round, then its median and
spread over the rounds reported. `whole process` rows are timed from the process's start to its exit: imports,
load, the page, the output. The sets: `float32` (what an AVX2 CPU runs), `bfloat16` (AVX512-BF16 CPUs), `extra`
(PDFs, ask, quantization, float16 decode, llama.cpp, the DocTags stand-in's KV cache).
Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.speed_children import CHILDREN, DECODE_FLOAT16, timed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The levers that change how a float32 or bf16 page is computed, each ablated on its own (levers/registry.py).
FLOAT32_LEVERS = ("packed_linear", "split_decode", "patch_layout", "sigmoid_gelu", "image_features", "heap")
BFLOAT16_LEVERS = ("attention", "patch_layout", "image_features", "heap")


def contenders(pages: dict[str, Path], which: str) -> dict[str, tuple]:
    """name -> (child, source, dtype, 5th argument)."""
    dense = str(pages["dense"])
    if which in ("float32", "bfloat16"):
        dtype, levers = which, FLOAT32_LEVERS if which == "float32" else BFLOAT16_LEVERS
        rows = {
            f"floor: the model's own products ({dtype})": ("floor", dense, dtype, "-"),
            "vlmcli ocr, dense A4": ("vlmcli", dense, dtype, "none"),
            "card snippet, sdpa": ("card", dense, dtype, "sdpa"),
            "vlmcli ocr, whole process": ("process_vlmcli", dense, dtype, "-"),
            "card snippet, whole process": ("process_card", dense, dtype, "sdpa"),
            **{f"vlmcli ocr, without {lever}": ("vlmcli_without", dense, dtype, lever) for lever in levers},
            "vlmcli ocr, no levers": ("vlmcli_without", dense, dtype, "all"),
        }
        if which == "float32":
            rows["OpenVINO fp32 vision + vlmcli LM"] = ("openvino", dense, "float32", "f32")
        else:
            rows["card snippet as written (eager)"] = ("card", dense, "bfloat16", "eager")
        return rows
    return {
        "vlmcli ocr, dense A4": ("vlmcli", dense, "float32", "none"),  # what the lossy rows' tokens are held to
        "vlmcli ocr, sparse A4": ("vlmcli", str(pages["sparse"]), "auto", "none"),
        "vlmcli ocr, photo": ("vlmcli", str(pages["photo"]), "auto", "none"),
        "vlmcli ocr, 1-page PDF": ("vlmcli_pdf", str(pages["pdf1"]), "auto", "none"),
        "vlmcli ocr, 4-page PDF (per page)": ("vlmcli_pdf", str(pages["pdf4"]), "auto", "none"),
        "vlmcli ask, dense A4 (with load)": ("ask", dense, "auto", "none"),
        "vlmcli ocr, dense A4, --decode-dtype float16": ("vlmcli", dense, "float32", DECODE_FLOAT16),
        "vlmcli ocr, dense A4, --quantize 4bit": ("vlmcli", dense, "auto", "4bit"),
        "vlmcli ocr, dense A4, --quantize 8bit": ("vlmcli", dense, "auto", "8bit"),
        "OpenVINO int8-weight vision + vlmcli LM": ("openvino", dense, "float32", "int8"),
        "llama.cpp, f32 text + f32 mmproj": ("llamacpp", dense, "float32", "f32"),
        "llama.cpp, q8_0 text + f32 mmproj": ("llamacpp", dense, "float32", "q8_0"),
        "bare text model decode (float32)": ("text_decode", "900", "float32", "-"),
        "granite-docling stand-in decode, KV cache vs its config": ("doctags_decode", dense, "auto", "-"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="/tmp/standin")
    parser.add_argument("--granite-checkpoint", default="/tmp/granite-standin")
    parser.add_argument("--set", dest="which", default="float32", choices=["float32", "bfloat16", "extra"])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--only", action="append",
                        help="run only this contender (its full name), or those whose name contains this")
    parser.add_argument("--rounds", type=int, default=5, help="run the contenders this many times, alternating")
    parser.add_argument("--out", type=Path, default=HERE / "speed.json")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, checkpoint, source, tokens, dtype, extra = args.child
        result = CHILDREN[kind](checkpoint, source, int(tokens), dtype, extra)
        result.setdefault("peak_rss_gb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
        return print(json.dumps(result))
    if not Path(args.checkpoint, "config.json").exists():
        subprocess.run([sys.executable, "-m", "tools.models", "standin", args.checkpoint, "--no-check"], check=True,
                       cwd=ROOT)
    from benchmarks import speed_report
    from benchmarks.pages import make_all

    chosen = _chosen(contenders(make_all(Path("/tmp/vlmcli-bench-pages")), args.which), args.only)
    rounds: list[dict[str, dict]] = []
    for number in range(args.rounds):
        rows = {"vlmcli --help": {"wall_s": _help_wall_s()}} if args.which != "extra" else {}
        for name in _rotated(list(chosen), number):
            kind, source, dtype, extra = chosen[name]
            checkpoint = _granite(args.granite_checkpoint) if kind == "doctags_decode" else args.checkpoint
            rows[name] = _run_child(kind, checkpoint, source, args.new_tokens, dtype, extra)
            print(f"round {number + 1} {name:44} {json.dumps(rows[name])}", file=sys.stderr, flush=True)
        rounds.append({**{name: row for name, row in rows.items() if name not in chosen},
                       **{name: rows[name] for name in chosen}})
    report = speed_report.report(rounds, args.checkpoint, args.which, args.new_tokens)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    speed_report.print_table(report)


def _rotated(names: list[str], round_index: int) -> list[str]:
    """The contenders in the order round `round_index` runs them: each round starts further along and every other
    round runs backwards, so no contender always runs early in a round or always right after the same one (a
    machine's speed drifts within a round)."""
    if not names:
        return names
    start = round_index * max(1, len(names) // 3) % len(names)
    order = names[start:] + names[:start]
    return order[::-1] if round_index % 2 else order


def _run_child(kind: str, checkpoint: str, source: str, tokens: int, dtype: str, extra: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.speed", "--child", kind, checkpoint, source, str(tokens), dtype,
               extra]
    started = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT)
    wall_s = time.perf_counter() - started
    if done.returncode != 0:
        return _failed(done.stderr)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {**row, "wall_s": wall_s} if kind.startswith("process_") else row


def _granite(checkpoint: str) -> str:
    """The granite-docling stand-in, built on first use."""
    if not Path(checkpoint, "config.json").exists():
        subprocess.run([sys.executable, "-m", "tools.models", "granite-standin", checkpoint], check=True, cwd=ROOT)
    return checkpoint


def _help_wall_s(runs: int = 5) -> float:
    vlmcli = str(Path(sys.executable).parent / "vlmcli")
    return statistics.median(timed(lambda: subprocess.run([vlmcli, "--help"], check=True, capture_output=True))
                             for _ in range(runs))


def _chosen(every: dict[str, tuple], only: list[str] | None) -> dict[str, tuple]:
    if not only:
        return every
    return {name: value for name, value in every.items()
            if any(part == name or (part not in every and part in name) for part in only)}


def _failed(stderr: str) -> dict:
    """A contender that did not run: skipped with a note when its optional engine is not installed."""
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    if last.startswith("ModuleNotFoundError"):
        return {"skipped": f"{last.split(': ', 1)[-1]} (optional: pip install it to run this row)"}
    return {"error": last}


if __name__ == "__main__":
    main()
