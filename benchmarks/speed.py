"""The speed benchmark: vlmcli against the SmolVLM-256M-Instruct model card's snippet, one machine, one run.

    .venv/bin/python -m benchmarks.speed [--checkpoint DIR] [--new-tokens 128] [--out benchmarks/speed.json]

Every contender runs in its own process (peak RSS is its own) on generated pages
(pages.py), forced to the same number of new tokens (min = max), on a random-weight
stand-in with SmolVLM-256M-Instruct's architecture and processor (`python -m
tools.models standin`, built if missing). Prints one table and writes it as JSON.
Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.speed_children import CHILDREN, DECODE_FLOAT16, timed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def contenders(pages: dict[str, Path], tokens: int, auto_dtype: str) -> dict[str, tuple]:
    """name -> (child, source, dtype, 5th argument)."""
    dense = str(pages["dense"])
    return {
        "vlmcli ocr, dense A4": ("vlmcli", dense, "auto", "none"),
        "vlmcli ocr, sparse A4": ("vlmcli", str(pages["sparse"]), "auto", "none"),
        "vlmcli ocr, photo": ("vlmcli", str(pages["photo"]), "auto", "none"),
        "vlmcli ocr, 1-page PDF": ("vlmcli_pdf", str(pages["pdf1"]), "auto", "none"),
        "vlmcli ocr, 4-page PDF (per page)": ("vlmcli_pdf", str(pages["pdf4"]), "auto", "none"),
        "vlmcli ask, dense A4 (with load)": ("ask", dense, "auto", "none"),
        "vlmcli ocr, dense A4, --dtype float32": ("vlmcli", dense, "float32", "none"),
        "vlmcli ocr, dense A4, --decode-dtype float16": ("vlmcli", dense, "float32", DECODE_FLOAT16),
        "vlmcli float32, vision linear unpacked": ("vlmcli_unpacked", dense, "float32", "none"),
        "vlmcli ocr, dense A4, vision stream transposed": ("vlmcli_transposed", dense, "auto", "none"),
        "OpenVINO fp32 vision + vlmcli LM": ("openvino", dense, "float32", "f32"),
        "OpenVINO int8-weight vision + vlmcli LM": ("openvino", dense, "float32", "int8"),
        "llama.cpp, f32 text + f32 mmproj": ("llamacpp", dense, "float32", "f32"),
        "llama.cpp, q8_0 text + f32 mmproj": ("llamacpp", dense, "float32", "q8_0"),
        "vlmcli ocr, dense A4, --quantize 4bit": ("vlmcli", dense, "auto", "4bit"),
        "vlmcli ocr, dense A4, --quantize 8bit": ("vlmcli", dense, "auto", "8bit"),
        "card snippet as written (bf16, eager)": ("card", dense, "bfloat16", "eager"),
        "card snippet, float32 + sdpa": ("card", dense, "float32", "sdpa"),
        f"bare text model decode ({auto_dtype})": ("text_decode", "900", auto_dtype, "-"),
        "granite-docling stand-in decode, KV cache vs its config": ("doctags_decode", dense, "auto", "-"),
        "matmul float32": ("matmul", "-", "float32", "-"),
        "matmul bfloat16": ("matmul", "-", "bfloat16", "-"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="/tmp/standin")
    parser.add_argument("--granite-checkpoint", default="/tmp/granite-standin")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--only", action="append",
                        help="run only this contender (its full name), or those whose name contains this")
    parser.add_argument("--rounds", type=int, default=1, help="run the contenders this many times, alternating")
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

    auto = _auto_dtype()
    rows: dict[str, dict] = {"vlmcli --help (median of 5)": {"wall_s": _help_wall_s()}}
    chosen = _chosen(contenders(make_all(Path("/tmp/vlmcli-bench-pages")), args.new_tokens, auto), args.only)
    runs: dict[str, list[dict]] = {name: [] for name in chosen}
    for _ in range(args.rounds):  # rounds alternate the contenders, so a slower spell of the machine hits all
        for name, (kind, source, dtype, extra) in chosen.items():
            checkpoint = _granite(args.granite_checkpoint) if kind == "doctags_decode" else args.checkpoint
            command = [sys.executable, "-m", "benchmarks.speed", "--child", kind, checkpoint, source,
                       str(args.new_tokens), dtype, extra]
            done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT)
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0
                              else _failed(done.stderr))
            print(f"{name:42} {json.dumps(runs[name][-1])}", file=sys.stderr, flush=True)
    rows.update({name: _median_row(results) for name, results in runs.items()})
    summary = speed_report.summary(rows, args.checkpoint, auto)
    args.out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    speed_report.print_table(rows, summary)


def _granite(checkpoint: str) -> str:
    """The granite-docling stand-in, built on first use."""
    if not Path(checkpoint, "config.json").exists():
        subprocess.run([sys.executable, "-m", "tools.models", "granite-standin", checkpoint], check=True, cwd=ROOT)
    return checkpoint


def _auto_dtype() -> str:
    code = ("from vlmcli.model.runtime import dtype_name; from vlmcli.specs import DType; "
            "print(dtype_name(DType.auto, 'cpu'))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def _help_wall_s(runs: int = 5) -> float:
    return statistics.median(timed(lambda: subprocess.run([sys.executable, "-m", "vlmcli", "--help"], check=True,
                                                           capture_output=True)) for _ in range(runs))


def _chosen(every: dict[str, tuple], only: list[str] | None) -> dict[str, tuple]:
    if not only:
        return every
    return {name: value for name, value in every.items()
            if any(part == name or (part not in every and part in name) for part in only)}


def _median_row(results: list[dict]) -> dict:
    """One row from a contender's rounds: each number the median over rounds; the page times all kept."""
    if len(results) == 1 or any("error" in r or "skipped" in r for r in results):
        return results[-1]
    row = {key: statistics.median(r[key] for r in results) if isinstance(value, float) else value
           for key, value in results[0].items()}
    if "page_s" in row:
        row["page_s_rounds"] = [round(r["page_s"], 2) for r in results]
    return row


def _failed(stderr: str) -> dict:
    """A contender that did not run: skipped with a note when its optional engine is not installed."""
    last = stderr.strip().splitlines()[-1]
    if last.startswith("ModuleNotFoundError"):
        return {"skipped": f"{last.split(': ', 1)[-1]} (optional: pip install it to run this row)"}
    return {"error": last}


if __name__ == "__main__":
    main()
