"""The speed benchmark's table and summary: a page's arithmetic, the floor, and ratios between rows."""

from __future__ import annotations

import json
import statistics
from pathlib import Path


def decode_tok_s(result) -> float:
    """A generation's decode rate: the tokens after the first over the time after the first."""
    return (result.new_tokens - 1) / max(result.seconds - result.first_token_s, 1e-9)


def leading_equal(ours: list[int], theirs: list[int]) -> int:
    """Tokens before the first difference."""
    return next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))


def page_flops(checkpoint: str, image_tokens: int, prompt_tokens: int, new_tokens: int) -> float:
    """Arithmetic of one page (shared/reference/perf_anchors.md §9): vision tiles + prefill + decode, 1 MAC = 2 FLOP."""
    config = json.loads(Path(checkpoint, "config.json").read_text())
    vision, text = config["vision_config"], config["text_config"]
    patches = (vision["image_size"] // vision["patch_size"]) ** 2
    d, ffn = vision["hidden_size"], vision["intermediate_size"]
    per_tile = patches * (vision["patch_size"] ** 2 * 3) * d + vision["num_hidden_layers"] * (
        patches * (4 * d * d + 2 * d * ffn) + 2 * patches * patches * d)
    tokens_per_tile = patches // config["scale_factor"] ** 2
    tiles = image_tokens // tokens_per_tile
    h, layers, kv = text["hidden_size"], text["num_hidden_layers"], text["num_key_value_heads"]
    head = h // text["num_attention_heads"]
    per_token = layers * (2 * h * h + 2 * h * kv * head + 3 * h * text["intermediate_size"]) + h * text["vocab_size"]
    return 2.0 * (tiles * per_tile + (prompt_tokens + new_tokens) * per_token)


def gemm_shapes(checkpoint: str) -> dict[str, tuple[int, int, int]]:
    """The model's largest products, as (rows, inner, outer) of F.linear: a sub-image's patches through the vision
    tower's attention and MLP projections, and a page's prompt through the language model's."""
    config = json.loads(Path(checkpoint, "config.json").read_text())
    vision, text = config["vision_config"], config["text_config"]
    patches = (vision["image_size"] // vision["patch_size"]) ** 2
    d, ffn = vision["hidden_size"], vision["intermediate_size"]
    h, inner = text["hidden_size"], text["intermediate_size"]
    prompt = 900  # a dense A4 page's prompt: 832 image tokens and the instruction
    return {"vision qkv/out": (patches, d, d), "vision fc1": (patches, d, ffn), "vision fc2": (patches, ffn, d),
            "text q/o": (prompt, h, h), "text gate/up": (prompt, h, inner), "text down": (prompt, inner, h)}


METRICS = ("page_s", "first_token_s", "decode_tok_s", "load_s", "wall_s", "peak_rss_gb", "gflop_s")
PAGE, CARD, OPENVINO = "vlmcli ocr, dense A4", "card snippet, sdpa", "OpenVINO fp32 vision + vlmcli LM"
PROCESS, CARD_PROCESS = "vlmcli ocr, whole process", "card snippet, whole process"
WITHOUT = "vlmcli ocr, without "


def report(rounds: list[dict[str, dict]], checkpoint: str, which: str, new_tokens: int) -> dict:
    """Each row's medians and spreads over the rounds, and the ratios between rows taken within each round."""
    names = list(dict.fromkeys(name for found in rounds for name in found))
    rows = {name: _row([found[name] for found in rounds if name in found]) for name in names}
    ratios: dict[str, list[float]] = {}
    for found in rounds:
        for key, value in _ratios(found, checkpoint).items():
            ratios.setdefault(key, []).append(value)
    summary = {key: _spread(values) for key, values in ratios.items()}
    return {"set": which, "new_tokens": new_tokens, "rounds": len(rounds), "machine": machine(),
            "rows": rows, "summary": summary, "per_round": rounds}


def _ratios(found: dict[str, dict], checkpoint: str) -> dict[str, float]:
    """One round's ratios: against the floor, the card's snippet, OpenVINO; each lever's worth."""
    page, ratios = found.get(PAGE, {}), {}
    floor = next((row for name, row in found.items() if name.startswith("floor")), {})
    if "page_s" not in page:
        return ratios
    if "gflop_s" in floor:
        flops = page_flops(checkpoint, page["image_tokens"], page["prompt_tokens"], page["new_tokens"])
        ratios["floor_s"] = flops / (floor["gflop_s"] * 1e9)
        ratios["page_vs_floor"] = page["page_s"] / ratios["floor_s"]
    for name, key in ((CARD, "speedup_vs_card"), (OPENVINO, "speedup_vs_openvino_vision"),
                      ("card snippet as written (eager)", "speedup_vs_card_as_written")):
        if "page_s" in found.get(name, {}):
            ratios[key] = found[name]["page_s"] / page["page_s"]
    if "load_s" in found.get(CARD, {}):
        ratios["load_minus_card_s"] = page["load_s"] - found[CARD]["load_s"]
    if "wall_s" in found.get(PROCESS, {}) and "wall_s" in found.get(CARD_PROCESS, {}):
        ratios["whole_process_speedup_vs_card"] = found[CARD_PROCESS]["wall_s"] / found[PROCESS]["wall_s"]
    for name, row in found.items():
        if name.startswith(WITHOUT) and "page_s" in row:
            lever = name[len(WITHOUT):]
            ratios[f"lever {lever}: page speedup"] = row["page_s"] / page["page_s"]
            ratios[f"lever {lever}: load cost s"] = page["load_s"] - row["load_s"]
            ratios[f"lever {lever}: peak saved GiB"] = row["peak_rss_gb"] - page["peak_rss_gb"]
    if "page_s" in found.get("vlmcli ocr, no levers", {}):
        ratios["levers together: page speedup"] = found["vlmcli ocr, no levers"]["page_s"] / page["page_s"]
    for name, row in found.items():  # lossy rows: how many of the float32 page's tokens they repeat before differing
        if row.get("weights") == "int8" or row.get("decode_dtype") == "float16" or \
                (row.get("quantize") or "none") != "none":
            ratios[f"leading equal tokens: {name}"] = leading_equal(row.get("token_ids", []), page["token_ids"])
    return ratios


def _row(results: list[dict]) -> dict:
    """A contender's rounds as one row: each metric's median and [min, max]; other fields from the last round."""
    good = [r for r in results if "error" not in r and "skipped" not in r]
    if not good:
        return results[-1]
    row = {key: value for key, value in good[-1].items() if key not in METRICS}
    for key in METRICS:
        values = [r[key] for r in good if isinstance(r.get(key), (int, float))]
        if values:
            row[key] = round(statistics.median(values), 3)
            row[f"{key}_range"] = [round(min(values), 3), round(max(values), 3)]
    return row


def _spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4),
            "rounds": len(values)}


def machine() -> dict:
    """What ran the benchmark: the CPU, its flags that matter (the kernel's list), the ISA the environment held
    torch to, the one its libraries saw (benchmarks/avx2only masks CPUID), torch's version."""
    import os
    import platform

    from vlmcli.model.cpu import cpu_flags

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    flags = sorted(cpu_flags() & {"avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16"})
    held = {key: os.environ[key] for key in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
            if key in os.environ}
    import torch

    masked = "avx2only" in os.environ.get("LD_PRELOAD", "")
    return {"cpu": model, "cores": os.cpu_count(), "flags": flags, "isa_held_to": held,
            "cpuid_masked_to_avx2": masked, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__}


def print_table(report: dict) -> None:
    print(f"{'':46}" + "".join(f"{c:>14}" for c in METRICS))
    for name, row in report["rows"].items():
        cells = [f"{row[c]:14.2f}" if isinstance(row.get(c), (int, float)) else f"{'-':>14}" for c in METRICS]
        print(f"{name:46}" + "".join(cells))
    print(json.dumps(report["summary"], indent=1))
