"""Collect the `vlmcli eval` results of learn_to_read.sh into one Markdown table.

    python examples/learn_to_read/report.py RUN_DIR [--out docs/learn_to_read.md]

RUN_DIR/eval/<model>__<set>[__<variant>].json are the JSON lines `vlmcli eval`
printed; RUN_DIR/timings.tsv the wall time of each step.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SETS = [("glyphs_heldout", "single characters, new renderings", "cer"),
        ("lines_heldout", "printed lines, new strings", "cer"),
        ("lines_heldout_newfont", "printed lines, held-out font", "cer"),
        ("hand_heldout", "handwriting-style lines, new strings", "cer"),
        ("hand_heldout_newfont", "handwriting-style lines, held-out font", "cer"),
        ("pages_heldout", "small text on 512 px pages (split)", "cer"),
        ("qa_heldout", "receipt questions", "anls")]
MODELS = ["untrained", "glyphs", "stage1", "stage2", "stage3"]
# What the table has shown so far on the 2-core CPU (fixed text: it cites runs, not this table's cells).
READING = [
    "## Reading the table",
    "",
    "- Single characters (one typeface, 36 classes) are learned completely in about 90 s of training: "
    "held-out exact match goes from 0 to 100 %. So data, prompts, label masking, full fine-tuning, saving, "
    "loading, generation and scoring work end to end (without splitting: a glyph is one 64 px image).",
    "- Lines (printed and handwriting-style, up to 16 characters, 14-20 px, noise, blur, rotation) are not "
    "learned in this budget: stage 1 sees about 18,000 lines, and the training loss stays near 1.9-2.2 "
    "nats per token, the language prior, so every image gets a plausible string of the training "
    "distribution. Stages 2 and 3 start from that, and the single characters are forgotten.",
    "- It is a matter of examples, not of a broken path: on an H200 (benchmarks/gpu-last-run.txt, "
    "examples/learn_to_read/gpu.toml, batch 64, 36,000 lines) the same stage, the same model and the "
    "same code pass that plateau after about 40,000 line examples (loss 1.78 at step 600) and reach "
    "0.15 nats per character at step 5,000 (320,000 examples, 4.5 minutes), still falling (with "
    "one token per character, the right next character then gets a geometric-mean probability of e^-0.15 = 0.86, "
    "given the true prefix). Saved and brought back, that stage-1 model reads held-out lines: 10.8 % CER on "
    "printed lines, 36.5 % on handwriting-style ones (docs/learn_to_read_gpu.md, `STAGE1=DIR` of this script). "
    "At this CPU's 25 examples per second, 320,000 examples would take about 3.5 hours.",
    "- The splitting and token-budget rows compare a model that does not read pages yet, so they "
    "say nothing about the paper's claim; they show the token counts each setting costs.",
]


# STAGE1=DIR learn_to_read.sh: stage 1 trained on a GPU (benchmarks/gpu_session.sh PARTS=train), the rest here.
READING_GPU = [
    "## Reading the table",
    "",
    "- Stage 1 on an H200 (examples/learn_to_read/gpu.toml: the same model, stage, data recipe and code as the CPU "
    "run, with 36,000 lines, batch 64, 4 minutes, 383,000 line examples; benchmarks/gpu-last-run.txt) gives a model "
    "that reads lines it never saw: 10.8 % CER and 68 % exact lines on printed, 36.5 % CER on handwriting-style "
    "lines, evaluated here in bf16 (on the GPU, in float32, 100 lines each: 12.7 % and 30.5 %). A font it never saw "
    "costs it: 20 % CER printed, 70 % handwriting-style. The targets (under 5 % printed, under 15 % "
    "handwriting-style) are not met at this scale. Training loss was 0.11 nats per character, still falling; "
    "the gap to held-out lines says the 36,000 lines, seen 10 times over, are too few. Lines rendered fresh "
    "for every step would be the next thing to try.",
    "- Stages 2 and 3, 3 minutes each on this CPU (83 and 33 steps of full fine-tuning, batch 4 and 8, at "
    "learning rates 5e-4 and 3e-4), do not learn pages or receipts in that budget, and they erase the "
    "line reading stage 1 gave (printed CER 10.8 % → 41 % → 92 %). The paper trains LoRA adapters on a "
    "pretrained language model, on mixtures; full fine-tuning of a 3M model on one task at a time forgets. "
    "Replaying stage-1 lines inside stages 2 and 3, or far more steps on a GPU, is what this calls for.",
    "- Splitting, on the one skill the model has (lines, trained split into 64 px sub-images at 256 px): read "
    "as trained, 80 visual tokens, 10.8 % CER; the same line squeezed into one 64 px image (16 tokens) or "
    "split at a smaller scale (192 or 128 px: 64 and 48 tokens) is not read at all (CER 90-133 %). Small text "
    "survives only at the scale the encoder was taught; this is the paper's case for splitting, though a "
    "fair test of it would compare with a model trained without splitting at equal compute (not done here).",
    "- The page rows: no stage-2 model reads pages, so the page splitting table says nothing about the claim "
    "beyond the token counts.",
]


def load(run_dir: Path) -> dict[tuple[str, str, str], dict]:
    results = {}
    for path in sorted((run_dir / "eval").glob("*.json")):
        model, dataset, *variant = path.stem.split("__")
        text = path.read_text().strip()
        if text:
            results[(model, dataset, variant[0] if variant else "")] = json.loads(text.splitlines()[-1])["overall"]
    return results


def _cell(overall: dict | None, metric: str) -> str:
    if overall is None:
        return "–"
    if metric == "cer":
        return f"{overall['cer']:.1%} / {overall.get('exact_match', 0):.0%}"
    return f"{overall.get('exact_match', 0):.0%} / {overall['anls']:.2f}"


def stage_table(results: dict, models: list[str]) -> list[str]:
    rows = ["| held-out set | metric | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for name, label, metric in SETS:
        heading = "CER / exact" if metric == "cer" else "exact / ANLS"
        rows.append(f"| {label} | {heading} | " + " | ".join(_cell(results.get((m, name, "")), metric)
                                                         for m in models) + " |")
    return rows


def variant_table(results: dict, model: str, dataset: str, variants: list[tuple[str, str]]) -> list[str]:
    rows = ["| setting | visual tokens per image | CER | exact |", "|---|---|---|---|"]
    for variant, label in variants:
        overall = results.get((model, dataset, variant))
        if overall:
            rows.append(f"| {label} | {overall.get('image_tokens', 0):.0f} | {overall['cer']:.1%} | "
                        f"{overall.get('exact_match', 0):.0%} |")
    return rows


def _intro(run_dir: Path, gpu: bool) -> list[str]:
    if gpu:
        return ["# Learning to read: stage 1 on a GPU, stages 2 and 3 on the CPU", "",
                f"Generated by `STAGE1=DIR examples/learn_to_read.sh` ({run_dir}): the stage-1 model of "
                "`benchmarks/gpu_session.sh` (PARTS=train, one H200), then stages 2 and 3 and every evaluation on "
                "the 2-core CPU, with the same data recipe as docs/learn_to_read.md. Cells: held-out CER / "
                "exact-match rate for transcriptions, exact-match rate / ANLS for questions."]
    return ["# Learning to read through vlmcli's own stages", "",
            f"Generated by `examples/learn_to_read.sh` ({run_dir}). Cells: held-out CER / exact-match "
            "rate for transcriptions, exact-match rate / ANLS for questions. `untrained` is the random-weight "
            "model; `glyphs` the same after stage 1 on single characters (64 px, no splitting), which stage 1 "
            "on lines then continues."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--stage1-elsewhere", action="store_true",
                        help="stage 1 came from elsewhere (STAGE1=DIR learn_to_read.sh: a GPU run)")
    args = parser.parse_args()
    results = load(args.run_dir)
    gpu = args.stage1_elsewhere
    models = ["stage1", "stage2", "stage3"] if gpu else MODELS
    timings = (args.run_dir / "timings.tsv").read_text().splitlines() if (args.run_dir / "timings.tsv").exists() else []
    lines = [*_intro(args.run_dir, gpu), "", *stage_table(results, models), "",
             "## Splitting (the paper's claim): the stage-3 model on the held-out pages", "",
             *variant_table(results, "stage3", "pages_heldout",
                            [("", "split into 64 px sub-images, longest edge 512"),
                             ("nosplit", "no splitting: the page squeezed into one 64 px image"),
                             ("edge384", "split, longest edge 384"), ("edge256", "split, longest edge 256")]), ""]
    if gpu:
        lines += ["## Splitting on lines: the stage-1 model on the held-out printed lines", "",
                  *variant_table(results, "stage1", "lines_heldout",
                                 [("", "split into 64 px sub-images, longest edge 256 (as trained)"),
                                  ("edge192", "split, longest edge 192"), ("edge128", "split, longest edge 128"),
                                  ("nosplit", "no splitting: the line squeezed into one 64 px image")]), ""]
    lines += [*(READING_GPU if gpu else READING), "", "## Wall time of each step (s)", "", "| step | seconds |",
              "|---|---|", *(f"| {name} | {seconds} |" for name, seconds in (t.split("\t") for t in timings if "\t" in t))]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
