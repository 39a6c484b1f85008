"""`vlmcli eval`: CER/WER for transcriptions, exact match and ANLS for answers.

Edit distances come from maintained packages (jiwer for CER/WER, rapidfuzz for
ANLS). Generation is vlmcli's own: greedy, with the prompts and pixels of
`vlmcli ask` / `vlmcli ocr`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jiwer
from rapidfuzz.distance import Levenshtein
from vlmcli.finetune.collate import example_images, family_messages
from vlmcli.finetune.data import Example

from vlmcli.errors import VlmcliError
from vlmcli.progress import NullProgress, Progress
from vlmcli.specs import GenerationSpec, PdfSpec
from vlmcli.text import normalize

ANLS_THRESHOLD = 0.5  # DocVQA's ANLS: answers further than this count as 0
SCORES = ("cer", "wer", "exact_match", "anls", "errors")


def anls(prediction: str, target: str) -> float:
    distance = Levenshtein.normalized_distance(normalize(prediction), normalize(target))
    return 1.0 - distance if distance < ANLS_THRESHOLD else 0.0


def score(example: Example, prediction: str) -> dict:
    """Per-example metrics: CER/WER and exact match (case kept) for transcriptions; exact match and ANLS otherwise."""
    target = example.target
    if example.kind == "transcription":
        exact = float(" ".join(prediction.split()) == " ".join(target.split()))
        return {"cer": jiwer.cer(target, prediction or " "), "wer": jiwer.wer(target, prediction or " "),
                "exact_match": exact}
    return {"exact_match": float(normalize(prediction) == normalize(target)), "anls": anls(prediction, target)}


@dataclass
class Report:
    overall: dict = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)


def evaluate(loaded, examples: list[Example], pdf: PdfSpec, generation: GenerationSpec,
             progress: Progress | None = None) -> Report:
    """Generate an answer for each example and score it; overall = corpus CER/WER and mean EM/ANLS."""
    from vlmcli.model.generate import generate

    progress = progress or NullProgress()
    progress.started(len(examples), "examples")
    report = Report()
    predictions: dict[str, list[tuple[str, str]]] = {}
    for index, example in enumerate(examples, start=1):
        started = time.perf_counter()
        try:
            images = example_images(example, loaded.max_input_px, pdf, loaded.family)
            generation_result = generate(loaded, family_messages(example, loaded.family)[:-1], images, generation)
        except VlmcliError as error:
            report.examples.append({"line": example.line_number, "error": error.message,
                                    "category": error.category, "exit_code": int(error.exit_code)})
            continue
        prediction = generation_result.text
        metrics = score(example, prediction)
        report.examples.append({"line": example.line_number, "kind": example.kind, "target": example.target,
                                "prediction": prediction, **metrics, "image_tokens": generation_result.image_tokens,
                                "seconds": round(time.perf_counter() - started, 3)})
        predictions.setdefault(example.kind, []).append((example.target, prediction))
        progress.advanced(index)
    report.overall = _overall(report.examples, predictions)
    return report


def _overall(rows: list[dict], predictions: dict[str, list[tuple[str, str]]]) -> dict:
    overall: dict = {"examples": len(rows), "errors": sum("error" in row for row in rows)}
    pairs = predictions.get("transcription", [])
    if pairs:
        targets, guesses = [t for t, _ in pairs], [g or " " for _, g in pairs]
        overall.update(cer=jiwer.cer(targets, guesses), wer=jiwer.wer(targets, guesses))
    scored = [row for row in rows if "exact_match" in row]
    if scored:
        overall.update(exact_match=sum(r["exact_match"] for r in scored) / len(scored),
                       image_tokens=sum(r["image_tokens"] for r in scored) / len(scored))
    answered = [row for row in rows if "anls" in row]
    if answered:
        overall.update(anls=sum(r["anls"] for r in answered) / len(answered))
    return overall


def evaluate_sets(sets: list[tuple[str, Any, list[Example]]], pdf: PdfSpec, generation: GenerationSpec,
                  before: dict | None, progress: Progress) -> dict[str, dict]:
    """Each named set with its own (loaded model, examples); the overall metrics by name.

    One note per set on stderr; after training (`before` given) each metric reads
    `before -> after`, so what a stage forgot is visible next to what it learned.
    """
    results = {}
    for name, loaded, examples in sets:
        overall = evaluate(loaded, examples, pdf, generation).overall
        earlier = (before or {}).get(name, {})
        shown = [key for key in SCORES if key in overall and (key != "errors" or overall[key] or earlier.get(key))]
        metrics = ", ".join(f"{key} {earlier[key]:.4g} -> {overall[key]:.4g}" if key in earlier
                            else f"{key}={overall[key]:.4g}" for key in shown)
        progress.note(f"eval {'after' if before is not None else 'before'} training, {name} "
                      f"({overall['examples']} examples): {metrics}")
        results[name] = overall
    return results
