"""The measured tables of the documentation, rendered from the committed benchmark outputs.

    python -m benchmarks.docs_tables           # rewrite the marked regions of README.md and docs/*.md
    python -m benchmarks.docs_tables --check   # exit 1, naming the pages, where a region differs from its file

A page marks a region with `<!-- begin: NAME -->` and `<!-- end: NAME -->` on lines of their own; TABLES maps
NAME to the function that renders it, from one file under benchmarks/. Every figure in such a region is read
from that file, so a table cannot drift from the run it reports (tests/test_docs.py checks the pages).
A new table is a new small function in TABLES. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import docs_catalogue, docs_speed

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
# A Python file marks its regions in comments (`# <!-- begin: NAME -->`).
_REGION = re.compile(r"^((?:# )?<!-- begin: ([\w-]+) -->\n)(.*?)^((?:# )?<!-- end: \2 -->)$", re.S | re.M)
_BEGIN = re.compile(r"^(?:# )?<!-- begin: ([\w-]+) -->$", re.M)


# ---- reading the files ------------------------------------------------------------------------------------------

def json_blocks(path: Path) -> list[dict]:
    """Every uncommented JSON object of the file that starts at the beginning of a line (one or many lines)."""
    text, blocks, decoder = path.read_text(), [], json.JSONDecoder()
    for match in re.finditer(r"^\{", text, re.M):
        value, _ = decoder.raw_decode(text, match.start())
        blocks.append(value)
    return blocks


def markdown_table(path: Path) -> list[list[str]]:
    """The first Markdown table of the file as rows of cells (header first, the |---| line left out)."""
    rows: list[list[str]] = []
    for line in path.read_text().splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):
                rows.append(cells)
        elif rows:
            break
    return rows


# ---- writing Markdown --------------------------------------------------------------------------------------------

def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def source(path: Path, which: str = "") -> str:
    """The line under a table that names its file (every output file sits in benchmarks/)."""
    return f"Source: `{path.parent.name}/{path.name}`{', ' + which if which else ''}."


# ---- the tables ----------------------------------------------------------------------------------------------------

GPU, DOCQA, RAY, AGREEMENT, SCANS, SERVE = (BENCH / f"{name}-last-run.txt"
                                            for name in ("gpu", "docqa", "ray", "agreement", "scans", "serve"))


def gpu_batches() -> str:
    header, *rows = markdown_table(GPU)
    return table(header, rows) + "\n\n" + source(GPU, "the table printed by `benchmarks/gpu.py`")


def gpu_static_cache() -> str:
    keys = {"cache": "cache", "batch_size": "batch", "pages": "pages", "pages_per_s": "pages/s",
            "new_tokens_per_s": "new tok/s", "peak_gpu_gib": "peak GPU GiB",
            "first_call_s": "first call s (compile included)"}
    records = [record for record in json_blocks(GPU) if "cache" in record]
    rows = [["" if record.get(key) is None else str(record[key]) for key in keys] for record in records]
    return table(list(keys.values()), rows) + "\n\n" + source(GPU, "every record with a `cache` field, in file order")


def million_pages() -> str:
    """Hours for 10^6 pages at the largest batch's rate of each precision in the GPU table."""
    header, *rows = markdown_table(GPU)
    column = {name: i for i, name in enumerate(header)}
    best: dict[str, tuple[int, float]] = {}
    for row in rows:
        batch, rate = int(row[column["batch"]]), float(row[column["pages/s"]])
        if batch >= best.get(row[column["precision"]], (0, 0.0))[0]:
            best[row[column["precision"]]] = (batch, rate)
    rates = [rate for _, rate in best.values()]
    out = [["GPU-hours", *(f"{1e6 / rate / 3600:.0f}" for rate in rates), ""]]
    for gpus in (1, 8, 64):
        recorded = rates[0] * gpus
        out.append([f"{gpus} GPU{'s' if gpus > 1 else ''}", *(f"{1e6 / (rate * gpus) / 3600:.1f} h" for rate in rates),
                    f"{recorded:.0f}" if recorded >= 10 else f"{recorded:.1f}"])
    names = [f"{precision}, batch {batch} ({rate} pages/s)" for precision, (batch, rate) in best.items()]
    first = next(iter(best))
    return (table(["10^6 pages on", *names, f"pages/s the driver records ({first})"], out) + "\n\n"
            + source(GPU, "the largest batch of each precision in its table; hours = 10^6 / (pages/s × GPUs) / 3600"))


def docqa_retrieval() -> str:
    stats = next(block["retrieval"] for block in json_blocks(DOCQA) if "retrieval" in block)
    rows = [["documents / pages", f"{stats['documents']} / {stats['pages']}"],
            ["answerable / unanswerable questions",
             f"{stats['answerable_questions']} / {stats['unanswerable_questions']}"],
            ["right page ranked first (hit@1)", f"{stats['hit_at_1']:.0%}"],
            ["right page in the top 3 (hit@3)", f"{stats['hit_at_3']:.0%}"],
            ["text extraction, ms per page", f"{stats['extract_ms_per_page']:.0f}"],
            ["ranking, ms per question", f"{stats['rank_ms_per_question']:.0f}"],
            ["median best score, answerable / unanswerable",
             f"{stats['median_top_score_answerable']:.2f} / {stats['median_top_score_unanswerable']:.2f}"]]
    return table(["retrieval", "value"], rows) + "\n\n" + source(DOCQA, "`retrieval`")


def docqa_questions() -> str:
    """Each question as a user asks it, in its own process: the whole process and its parts."""
    run = next(block["questions"] for block in json_blocks(DOCQA) if "questions" in block)
    header = ["question (its own process)", "whole process s", "Python and vlmcli start s", "model load s",
              "question s", "of which the model reading s", "pages read (image features cached)"]
    rows = [[name, f"{row['process_s']:.1f}", f"{row['startup_s']:.1f}", f"{row['load_s']:.1f}",
             f"{row['question_s']:.1f}", f"{row['read_s']:.1f}",
             ", ".join(f"{page}{' (cached)' if cached else ''}"
                       for page, cached in zip(row["pages_read"], row["features_cached"]))]
            for name, row in run["rows"].items()]
    return (table(header, rows) + f"\n\n`--top-k {run['top_k']}`, {run['answer_tokens']} new tokens an answer, "
            f"{run['ocr_tokens']} a transcribed page, {run['scanned_pages']}-page scan. " + source(DOCQA, "`questions`"))


def ray_overhead() -> str:
    lines = RAY.read_text().splitlines()
    row = re.compile(r"^(\S.*?)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)$")
    rows = [list(match.groups()) for match in map(row.match, lines) if match]
    notes = [line for line in lines if line.startswith(("ray.init", "Ray's overhead"))]
    return (table(["run", "wall s", "fixed s (start-up)", "pages/s", "ms / page"], rows) + "\n\n"
            + "\n".join(f"- {note}" for note in notes) + "\n\n" + source(RAY))


AGREEMENT_OPTIONS = {"split-decode": "vlmcli's float32 decode (`split_decode`)",
                     "decode-float16": "`--decode-dtype float16`", "4bit": "`--quantize 4bit`"}


def agreement() -> str:
    rows = []
    for number, run in enumerate(json_blocks(AGREEMENT), 1):
        for key, equal in run.items():
            if key.startswith("leading_equal: "):
                option = key.partition(": ")[2]
                same = sum(n == run["new_tokens"] for n in equal)
                rows.append([str(number), AGREEMENT_OPTIONS.get(option, f"`{option}`"), str(run["new_tokens"]),
                             f"{same} of {run['cases']}", f"{min(equal)}–{max(equal)}",
                             f"{run[f'decode_speedup: {option}']:.2f}"])
    header = ["run", "option", "new tokens", "reads with every token equal", "tokens equal before the first difference",
              "decode rate / float32 nn.Linear's"]
    return table(header, rows) + "\n\n" + source(AGREEMENT, "run N is the N-th JSON object in the file")


def scans_first_answer() -> str:
    """Time to the first answer on the image-only PDF: a first pass against the model transcribing every page."""
    run = json_blocks(SCANS)[0]
    found = run["first_answer"]
    rows = [[f"`--first-pass {engine}`", f"{row['seconds']:.0f}", str(row["pages_read"]), f"{row['read_s']:.0f}"]
            for engine, row in found["rows"].items()]
    header = ["first question, empty page cache", "seconds (model loaded)", "pages the model read for the answer",
              "of which answering, s"]
    return (table(header, rows) + f"\n\n{run['pages']} pages at {run['scan_dpi']:.0f} dpi; the first pass "
            f"{run['first_pass_s_per_page']:.2f} s a page; the model ({found['dtype'].replace('torch.', '')}) "
            f"transcribes with {found['ocr_tokens']} new tokens a page and answers with {found['answer_tokens']}, "
            f"`--top-k {found['top_k']}`; load {found['load_s']:.1f} s apart. First pass / model: "
            f"{found['speedup']:.1f}× faster. " + source(SCANS))


def serve_figures() -> str:
    """`vlmcli serve` under concurrent clients, and `ocr --engine server` against it next to a local run."""
    run = json_blocks(SERVE)[0]
    chat = [[str(row["clients"]), str(row["requests"]), str(len(row["errors"])), f"{row['requests_per_s']:.3f}",
             f"{row['p50_s']:.1f}", f"{row['p99_s']:.1f}"] for row in run["chat"].values()]
    ocr = [[f"`vlmcli ocr`, {name}", str(row["pages"]), f"{row['wall_s']:.1f}", f"{row['pages_per_s']:.3f}"]
           for name, row in run["ocr"].items()]
    return (table(["concurrent clients", "requests", "errors", "requests/s", "p50 latency s", "p99 latency s"], chat)
            + "\n\n" + table(["run (whole process)", "pages", "seconds", "pages/s"], ocr)
            + f"\n\nOne dense A4 page per chat request, {run['new_tokens']} new tokens, {run['cpus']} CPUs; the local "
            "run's seconds include loading the model, the server's load came before. " + source(SERVE))


TABLES: dict[str, Callable[[], str]] = {
    "run-options": docs_catalogue.run_options,
    "finetune-options": docs_catalogue.finetune_options,
    "models": docs_catalogue.models,
    "models-short": docs_catalogue.models_short,
    "catalogue-cpu-cost": docs_speed.catalogue_cpu_cost,
    "speed-avx2": docs_speed.speed_avx2,
    "speed-avx2-summary": docs_speed.speed_avx2_summary,
    "speed-readme": docs_speed.speed_readme,
    "families": docs_speed.families_table,
    "gpu-batches": gpu_batches,
    "gpu-static-cache": gpu_static_cache,
    "million-pages": million_pages,
    "docqa-retrieval": docqa_retrieval,
    "docqa-questions": docqa_questions,
    "ray-overhead": ray_overhead,
    "scans-first-answer": scans_first_answer,
    "serve-figures": serve_figures,
    "agreement": agreement,
}


# ---- the pages -------------------------------------------------------------------------------------------------------

def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "vlmcli" / "catalogue.py"]


def regions(text: str) -> list[str]:
    """The names of the regions a page marks, in order."""
    return _BEGIN.findall(text)


def render(text: str) -> str:
    """`text` with every marked region replaced by its table; an unknown or unclosed region raises KeyError."""
    names = regions(text)
    closed = [match.group(2) for match in _REGION.finditer(text)]
    if names != closed:
        raise KeyError(f"regions opened {names} but closed {closed}")
    for name in names:
        if name not in TABLES:
            raise KeyError(f"no table named {name!r} in benchmarks/docs_tables.py")
    return _REGION.sub(lambda match: match.group(1) + TABLES[match.group(2)]() + "\n" + match.group(4), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 where a page differs")
    args = parser.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text()
        rendered = render(text)
        if rendered != text:
            stale.append(page.relative_to(ROOT).as_posix())
            if not args.check:
                page.write_text(rendered)
    verb = "differ from their files" if args.check else "rewritten"
    print(f"{len(stale)} pages {verb}" + (f": {', '.join(stale)}" if stale else ""), file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
