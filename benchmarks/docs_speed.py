"""The docs' speed and per-family tables, rendered from the JSON reports of benchmarks/speed.py and
benchmarks/families.py as committed (`# ` comment lines naming the command and the machine, then the report).
Standard library only; docs_tables.py maps each region to one of these."""

from __future__ import annotations

import json
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parent
AVX2 = BENCH / "avx2-last-run.txt"
FAMILIES = BENCH / "families-last-run.txt"
COLUMNS = {"page_s": "s / page", "first_token_s": "first token s", "decode_tok_s": "decode tok/s",
           "load_s": "load s", "wall_s": "whole process s", "peak_rss_gb": "peak RSS GiB", "gflop_s": "GFLOP/s"}
SUMMARY = {
    "floor_s": "float32 floor of the page (its arithmetic at the round's best rate of the model's own products), s",
    "page_vs_floor": "vlmcli's page / the floor",
    "speedup_vs_card": "plain transformers (card snippet, sdpa): its page / vlmcli's",
    "speedup_vs_openvino_vision": "OpenVINO fp32 vision tower + vlmcli's LM: its page / vlmcli's",
    "load_minus_card_s": "vlmcli's load minus plain transformers' load, s",
    "whole_process_speedup_vs_card": "one-page run, whole process: plain transformers' / vlmcli's",
    "levers together: page speedup": "every lever off: its page / vlmcli's",
}
LABELS = {"smolvlm": "SmolVLM-256M", "granite_docling_258m": "granite-docling-258M", "lighton_ocr": "LightOnOCR-2-1B",
          "paddleocr_vl": "PaddleOCR-VL", "glm_ocr": "GLM-OCR"}


def reports(path: Path) -> list[dict]:
    """The JSON reports of an output file, in file order (each starts with `{` at a line's beginning)."""
    text, found, decoder = path.read_text(), [], json.JSONDecoder()
    for match in re.finditer(r"^\{", text, re.M):
        found.append(decoder.raw_decode(text, match.start())[0])
    return found


def header(path: Path) -> str:
    """The file's first comment line: the command and the machine."""
    return next(line[2:] for line in path.read_text().splitlines() if line.startswith("# "))


def _spread(median: float, low: float, high: float, digits: int = 2) -> str:
    return f"{median:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def speed_rows(path: Path) -> str:
    report = reports(path)[0]
    rows = report["rows"]
    columns = [c for c in COLUMNS if any(c in row for row in rows.values())]
    lines = ["| row | " + " | ".join(COLUMNS[c] for c in columns) + " |", "|---|" + "---|" * len(columns)]
    for name, row in rows.items():
        cells = [_spread(row[c], *row[f"{c}_range"]) if f"{c}_range" in row else
                 (f"{row[c]:.2f}" if isinstance(row.get(c), (int, float)) else row.get("skipped", row.get("error", "")))
                 for c in columns]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return ("\n".join(lines) + f"\n\nMedians of {report['rounds']} alternating rounds (min–max); {report['new_tokens']}"
            f" new tokens. Source: `benchmarks/{path.name}`: {header(path)}.")


def speed_summary(path: Path) -> str:
    report = reports(path)[0]
    lines = ["| figure | median (min–max) over the rounds |", "|---|---|"]
    for key, spread in report["summary"].items():
        label = SUMMARY.get(key) or (f"`{key}`" if not key.startswith("lever ") else key)
        lines.append(f"| {label} | {_spread(spread['median'], spread['min'], spread['max'])} |")
    flags = " ".join(report["machine"]["flags"])
    return ("\n".join(lines) + f"\n\nMachine: {report['machine']['cpu']}, {report['machine']['cores']} cores, flags "
            f"{flags}{_held(report['machine'])}. Source: `benchmarks/{path.name}`.")


def _held(machine: dict) -> str:
    """How the run held its libraries to an instruction set: CPUID masked (benchmarks/avx2only), or torch's
    settings alone."""
    held = " ".join(f"{key}={value}" for key, value in machine["isa_held_to"].items())
    if machine.get("cpuid_masked_to_avx2"):
        return f", every library held to AVX2 (CPUID masked by benchmarks/avx2only; {held})"
    return f", torch held to {held}" if held else ""


def speed_avx2() -> str:
    return speed_rows(AVX2)


def speed_avx2_summary() -> str:
    return speed_summary(AVX2)


def _cell(row: dict, metric: str, digits: int = 1) -> str:
    if f"{metric}_range" not in row:
        return "-"
    return _spread(row[metric], *row[f"{metric}_range"], digits)


def speed_readme() -> str:
    """The README's few lines: vlmcli's page, load, whole process and memory beside plain transformers' and
    OpenVINO's, the floor, and `vlmcli --help`."""
    report = reports(AVX2)[0]
    rows, summary = report["rows"], report["summary"]
    ours, card, openvino = (rows.get(name, {}) for name in
                            ("vlmcli ocr, dense A4", "card snippet, sdpa", "OpenVINO fp32 vision + vlmcli LM"))
    ours_process, card_process = rows.get("vlmcli ocr, whole process", {}), rows.get("card snippet, whole process", {})
    lines = ["| median of the rounds (min–max) | vlmcli | plain transformers + sdpa | OpenVINO fp32 vision + vlmcli's LM |",
             "|---|---|---|---|",
             f"| A4 page, s | {_cell(ours, 'page_s')} | {_cell(card, 'page_s')} | {_cell(openvino, 'page_s')} |",
             f"| model load, s | {_cell(ours, 'load_s', 2)} | {_cell(card, 'load_s', 2)} | {_cell(openvino, 'load_s')} |",
             f"| one-page run, whole process, s | {_cell(ours_process, 'wall_s')} | {_cell(card_process, 'wall_s')} | - |",
             f"| peak RSS, GiB | {_cell(ours, 'peak_rss_gb', 2)} | {_cell(card, 'peak_rss_gb', 2)} | "
             f"{_cell(openvino, 'peak_rss_gb', 2)} |"]
    floor, ratio = summary["floor_s"], summary["page_vs_floor"]
    help_s = rows.get("vlmcli --help", {}).get("wall_s")
    return ("\n".join(lines) + f"\n\nThe page's float32 floor (its arithmetic at the round's best rate of the model's "
            f"own products) was {floor['median']:.1f} s, vlmcli's page {ratio['median']:.2f}× it "
            f"({ratio['min']:.2f}–{ratio['max']:.2f}); `vlmcli --help` took {help_s:.2f} s. "
            f"{report['rounds']} alternating rounds. Source: `benchmarks/{AVX2.name}`: {header(AVX2)}.")


def family_costs() -> dict[str, dict]:
    """Per stand-in: vlmcli's A4 page and whole process (medians), peak memory, share of the floor."""
    out = {}
    for family, entry in reports(FAMILIES)[0]["families"].items():
        ours = entry["vlmcli"]
        if "page_s" not in ours:
            continue
        out[family] = {"page_s": ours["page_s"]["median"], "wall_s": ours["wall_s"]["median"],
                       "peak_rss_gb": ours["peak_rss_gb"]["median"],
                       "floor_share": entry.get("floor_share", {}).get("vlmcli", {}).get("median")}
    return out


def families_table() -> str:
    if not FAMILIES.exists():
        return "Not measured yet: `python -m benchmarks.families` writes it."
    report = reports(FAMILIES)[0]
    lines = ["| stand-in of | rounds | visual tokens | vlmcli: page s | plain: page s | vlmcli: whole process s | "
             "plain: whole process s | whole process, plain / vlmcli | peak RSS GiB, vlmcli / plain | "
             "page's share of the float32 floor, vlmcli / plain |", "|---|" + "---|" * 9]
    for family, entry in report["families"].items():
        ours, theirs, ratio = entry["vlmcli"], entry["plain"], entry.get("vlmcli_over_plain", {})
        if "page_s" not in ours or "page_s" not in theirs:
            lines.append(f"| {LABELS.get(family, family)} | failed: {ours.get('errors') or theirs.get('errors')} |"
                         + " |" * 8)
            continue
        share = entry.get("floor_share", {})
        cells = [str(ratio["wall_s"]["rounds"]), str(theirs.get("image_tokens", "")),
                 _spread(ours["page_s"]["median"], ours["page_s"]["min"], ours["page_s"]["max"], 1),
                 _spread(theirs["page_s"]["median"], theirs["page_s"]["min"], theirs["page_s"]["max"], 1),
                 _spread(ours["wall_s"]["median"], ours["wall_s"]["min"], ours["wall_s"]["max"], 1),
                 _spread(theirs["wall_s"]["median"], theirs["wall_s"]["min"], theirs["wall_s"]["max"], 1),
                 f"{1 / ratio['wall_s']['median']:.2f}",
                 f"{ours['peak_rss_gb']['median']:.2f} / {theirs['peak_rss_gb']['median']:.2f}",
                 " / ".join(f"{share[side]['median']:.2f}" for side in ("vlmcli", "plain") if side in share)]
        lines.append(f"| {LABELS.get(family, family)} | " + " | ".join(cells) + " |")
    return ("\n".join(lines) + f"\n\nOne dense A4 page at 200 dpi, {report['new_tokens']} new tokens, {report['dtype']}, "
            f"medians of the alternating rounds (min–max). Source: `benchmarks/{FAMILIES.name}`: "
            f"{header(FAMILIES)}.")


ALIASES = {"smolvlm": ("smolvlm-256m",), "granite_docling_258m": ("granite-docling",),
           "lighton_ocr": ("lightonocr", "lightonocr-bbox"), "paddleocr_vl": ("paddleocr-vl",), "glm_ocr": ("glm-ocr",)}


def catalogue_cpu_cost() -> str:
    """vlmcli/catalogue.py's CPU_COST: each measured alias's A4 page on the stand-in of its architecture."""
    if not FAMILIES.exists():
        return 'CPU_COST: dict[str, dict] = {}\nCPU_COST_SOURCE = "not measured yet"'
    costs = {alias: {key: round(value, 2) for key, value in cost.items() if value is not None}
             for family, cost in family_costs().items() for alias in ALIASES.get(family, ())}
    report = reports(FAMILIES)[0]
    machine = report["machine"]
    held = " (torch held to AVX2)" if machine.get("isa_held_to") else ""
    where = f"{report['dtype']} on a {machine['cores']}-core {machine['cpu']}{held}"
    body = ",\n".join(f"    {alias!r}: {cost!r}" for alias, cost in costs.items())
    return (f"CPU_COST: dict[str, dict] = {{\n{body},\n}}\n"
            f"CPU_COST_SOURCE = {f'benchmarks/{FAMILIES.name}, {where}'!r}")
