"""What each side of the families benchmark runs in its own process, and the report of the rounds.

A child takes (family, checkpoint, page, new tokens, dtype) and returns one JSON-able row; benchmarks/families.py
starts it, times the process from outside and alternates the rounds.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

CARD_PROMPTS = {  # the Idefics3 cards' own snippets (the other families' are in tools/models/recipes.py)
    "smolvlm": "Can you describe this image?",  # SmolVLM-256M-Instruct's card
    "granite_docling_258m": "Convert this page to docling.",  # granite-docling-258M's card
}
RECIPE_OF = {"lighton_ocr": "lighton_ocr", "paddleocr_vl": "paddleocr_vl", "glm_ocr": "glm_ocr"}
METRICS = ("wall_s", "load_s", "page_s", "peak_rss_gb")


def child_vlmcli(family: str, checkpoint: str, page: str, tokens: int, dtype: str) -> dict:
    """`vlmcli ocr PAGE --model CHECKPOINT --dtype DTYPE` as the console script runs it (vlmcli.cli imported
    first, the job writing the page's text), its length forced (min = max, loop guard off)."""
    import io

    import vlmcli.cli  # noqa: F401 - what the console script imports before anything else
    import vlmcli.model.loading  # noqa: F401 - torch and transformers imported before the load's clock, as plain's
    from vlmcli import model
    from vlmcli.jobs.ocr import OcrRequest, run_ocr
    from vlmcli.model.profile import load_profile
    from vlmcli.specs import DType, OutputFormat, RunSpec

    options = dict(model=checkpoint, dtype=DType(dtype), offline=True)
    profile = load_profile(RunSpec.from_options(**options).model)
    run = RunSpec.from_options(**options, transcription=profile.family.transcription, max_new_tokens=tokens,
                               min_new_tokens=tokens, repetition_min_tokens=10**9)
    seen = _timed_load(model)
    started = time.perf_counter()
    out = io.StringIO()
    summary = run_ocr(OcrRequest(inputs=(Path(page),), instruction=profile.family.instruction(), run=run,
                                 family=profile.family, output_format=OutputFormat.json), write=out.write)
    if summary.pages_ok != 1:
        raise SystemExit(f"vlmcli read {summary.pages_ok} pages: {summary.line()}")
    page_s = time.perf_counter() - started - seen["load_s"]
    records = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    record = next(r for r in records if "image_tokens" in r)  # the page's (a DocTags input ends with its document's)
    return {"load_s": seen["load_s"], "page_s": page_s, "family": seen["family"], "levers": seen["levers"],
            "dtype": seen["dtype"], **{key: record[key] for key in ("image_tokens", "new_tokens", "bands")}}


def child_plain(family: str, checkpoint: str, page: str, tokens: int, dtype: str) -> dict:
    """The model card's recipe through plain transformers (AutoModelForImageTextToText, the card's prompt through
    the processor, `generate` with min = max new tokens); every nn.Linear counts its arithmetic."""
    import torch
    from PIL import Image

    from tools.models import recipes

    started = time.perf_counter()
    model, processor = recipes.load(checkpoint, getattr(torch, dtype))
    load_s = time.perf_counter() - started
    flops = _count_linear_flops(model)
    image = Image.open(page).convert("RGB")
    started = time.perf_counter()
    inputs = _card_inputs(family, processor, image)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    prompt_tokens = inputs["input_ids"].shape[1]
    processor.decode(out[0, prompt_tokens:], skip_special_tokens=True)
    image_token = model.config.image_token_id if hasattr(model.config, "image_token_id") else None
    return {"load_s": load_s, "page_s": time.perf_counter() - started, "linear_gflop": flops["total"] / 1e9,
            "prompt_tokens": prompt_tokens, "new_tokens": int(out.shape[1] - prompt_tokens),
            "image_tokens": int((inputs["input_ids"] == image_token).sum()) if image_token is not None else None}


def child_floor(family: str, checkpoint: str, page: str, tokens: int, dtype: str) -> dict:
    """The best rate of the family's largest linear products (the vision tower's MLP over 4096 patches, the
    language model's over a 2048-token prompt), all torch threads, best of 5 each."""
    import torch

    config = json.loads(Path(checkpoint, "config.json").read_text())
    torch_dtype = getattr(torch, dtype)
    rates = {}
    with torch.inference_mode():
        for name, rows, part in (("vision", 4096, config.get("vision_config") or {}),
                                 ("text", 2048, config.get("text_config") or config)):
            inner, outer = part.get("hidden_size"), part.get("intermediate_size")
            if not inner or not outer:
                continue
            x, w = torch.randn(rows, inner, dtype=torch_dtype), torch.randn(outer, inner, dtype=torch_dtype)
            torch.nn.functional.linear(x, w)
            best = min(_seconds(lambda: torch.nn.functional.linear(x, w)) for _ in range(5))
            rates[name] = 2 * rows * inner * outer / best / 1e9
    return {"gflop_s": max(rates.values()), "shape_gflop_s": {k: round(v, 1) for k, v in rates.items()}}


CHILDREN = {"vlmcli": child_vlmcli, "plain": child_plain, "floor": child_floor}


def report(rounds: list[dict[str, dict]], families: list[str], new_tokens: int, dtype: str) -> dict:
    """Per family, each side's medians and [min, max] over the rounds, and the ratios vlmcli / plain taken within
    each round (whole process, page, peak memory) and each side's page share of its round's floor."""
    out = {}
    for family in families:
        sides = {side: [found.get(f"{family} {side}", {}) for found in rounds] for side in ("vlmcli", "plain")}
        floors = [found.get(f"{family} floor", {}) for found in rounds]
        entry = {side: _summary(rows) for side, rows in sides.items()}
        ratios: dict[str, list[float]] = {"wall_s": [], "page_s": [], "peak_rss_gb": [],
                                          "vlmcli_floor_share": [], "plain_floor_share": []}
        for ours, theirs, floor in zip(sides["vlmcli"], sides["plain"], floors):
            if "error" in ours or "error" in theirs or not ours or not theirs:
                continue
            for key in ("wall_s", "page_s", "peak_rss_gb"):
                ratios[key].append(ours[key] / theirs[key])
            if floor.get("gflop_s") and theirs.get("linear_gflop"):
                floor_s = theirs["linear_gflop"] / floor["gflop_s"]
                ratios["vlmcli_floor_share"].append(floor_s / ours["page_s"])
                ratios["plain_floor_share"].append(floor_s / theirs["page_s"])
        entry["vlmcli_over_plain"] = {key: _spread(values) for key, values in ratios.items()
                                      if values and not key.endswith("floor_share")}
        entry["floor_share"] = {key.split("_")[0]: _spread(values) for key, values in ratios.items()
                                if values and key.endswith("floor_share")}
        entry["floor_gflop_s"] = _spread([f["gflop_s"] for f in floors if f.get("gflop_s")]) if any(
            f.get("gflop_s") for f in floors) else None
        out[family] = entry
    return {"new_tokens": new_tokens, "dtype": dtype, "rounds": len(rounds), "families": out, "raw": rounds}


def _summary(rows: list[dict]) -> dict:
    good = [row for row in rows if row and "error" not in row]
    if not good:
        return {"errors": [row.get("error") for row in rows]}
    summary = {key: value for key, value in good[-1].items() if key not in METRICS}
    for key in METRICS:
        values = [row[key] for row in good if isinstance(row.get(key), (int, float))]
        if values:
            summary[key] = _spread(values)
    return summary


def _spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "rounds": len(values)}


def _timed_load(model) -> dict:
    """Wrap `vlmcli.model.load` so the child knows its load time and what it resolved."""
    seen: dict = {}
    load = model.load

    def timed(*args, **kwargs):
        started = time.perf_counter()
        loaded = load(*args, **kwargs)
        seen.update(load_s=time.perf_counter() - started, family=loaded.family.name,
                    levers=[lever.name for lever in loaded.resolved.levers], dtype=str(loaded.dtype).replace("torch.", ""))
        return loaded

    model.load = timed
    return seen


def _card_inputs(family: str, processor, image):
    """The card's prompt and image as the processor's tensors."""
    from tools.models import recipes

    if family in CARD_PROMPTS:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": CARD_PROMPTS[family]}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        return processor(text=prompt, images=[image], return_tensors="pt")
    captured = {}

    def capture(model, inputs, max_new_tokens):
        captured["inputs"] = inputs
        return []

    original, recipes._generate = recipes._generate, capture
    try:
        recipes.RECIPES[RECIPE_OF[family]](None, processor, image)
    finally:
        recipes._generate = original
    return captured["inputs"]


def _count_linear_flops(model) -> dict:
    """2 x rows x in x out for every nn.Linear call (forward hooks: microseconds against seconds of products)."""
    import torch

    flops = {"total": 0}

    def hook(module, args, output):
        flops["total"] += 2 * (args[0].numel() // module.in_features) * module.in_features * module.out_features

    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(hook)
    return flops


def _seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
