"""GPU throughput of `vlmcli ocr` on many pages: bf16 and 4-bit, 1/8/32 pages per generate call (issue 4).

    python -m benchmarks.gpu --checkpoint DIR [--pages 32] [--new-tokens 128] [--out gpu.json]
    python -m benchmarks.gpu --from-meta META_DIR ...   # random weights from a stand-in's config + tokenizer
    python -m benchmarks.gpu --checkpoint DIR --device cpu --precisions none   # the same table on a CPU
    python -m benchmarks.gpu ... --cache static   # the static KV cache lever (transformers compiles the decode step)
    python -m benchmarks.gpu --compare A.json B.json   # pages with the same text in two runs, per batch size

The stand-in is `python -m tools.models standin`'s (SmolVLM-256M-Instruct's architecture and
processor, random weights). `--from-meta` builds its weights on the spot from the
small files (config, tokenizer, processor), so only those travel to the GPU
machine. Pages are pages.py's dense A4 text pages (13 sub-images, 832 visual
tokens each), every one different; each page is forced to the same number of new
tokens (min = max, loop guard off) so batch sizes compare. The model loads once per
precision and runs through the pipeline (`transcribe`, as `vlmcli ocr`). Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build_from_meta(meta: Path, out: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, GenerationConfig

    if (out / "model.safetensors").exists():
        return out
    shutil.copytree(meta, out, dirs_exist_ok=True)
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(meta))
    model.generation_config = GenerationConfig.from_pretrained(meta)
    model.to(torch.bfloat16).save_pretrained(out)
    return out


def measure(run, pages: list[Path], batch_size: int) -> dict:
    import torch

    from vlmcli.pipeline.results import PageResult
    from vlmcli.pipeline.transcribe import transcribe
    from vlmcli.prompts import OCR_PROMPT

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    items = list(transcribe(pages, OCR_PROMPT, _with_batch(run, batch_size)))
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    failed = [item for item in items if not isinstance(item, PageResult)]
    assert not failed, failed
    return {"batch_size": batch_size, "pages": len(items), "seconds": round(seconds, 2),
            "pages_per_s": round(len(items) / seconds, 2),
            "new_tokens_per_s": round(sum(i.new_tokens for i in items) / seconds, 1),
            "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "image_tokens": items[0].image_tokens, "new_tokens": items[0].new_tokens,
            "texts": [item.text for item in items]}


def _with_batch(run, batch_size: int):
    from dataclasses import replace

    return replace(run, batch_size=batch_size)


def run_precision(checkpoint: Path, quantize: str, pages: list[Path], tokens: int, batch_sizes: list[int],
                  pages_at_batch_1: int, device: str, cache: str) -> list[dict]:
    import torch

    from vlmcli import model
    from vlmcli.specs import Device, Quant, RunSpec

    run = RunSpec.from_options(model=str(checkpoint), quantize=Quant(quantize), device=Device(device), offline=True,
                               max_new_tokens=tokens, min_new_tokens=tokens, repetition_min_tokens=tokens + 1)
    started = time.perf_counter()
    loaded = model.load(run.model, run.split)
    load_s = time.perf_counter() - started
    weights_gib = torch.cuda.memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    if cache == "static":
        # A fixed-size cache lets generate compile the decode step (once per batch shape).
        loaded.model.generation_config.cache_implementation = "static"
    original_load, model.load = model.load, lambda *args, **kwargs: loaded
    try:
        measure(run, pages[:2], 2)  # warm-up: CUDA context, kernels, allocator
        rows = []
        for batch_size in batch_sizes:
            subset = pages[:pages_at_batch_1] if batch_size == 1 else pages
            # The static cache compiles per batch shape: time that first call apart from the steady rate.
            first_s = measure(run, subset[:batch_size], batch_size)["seconds"] if cache == "static" else None
            row = measure(run, subset, batch_size)
            row.update(precision=str(loaded.dtype).replace("torch.", "") if quantize == "none" else quantize, load_s=round(load_s, 1),
                       weights_gib=round(weights_gib, 2), cache=cache, first_call_s=first_s)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "texts"}), flush=True)
    finally:
        model.load = original_load
    _agreement(rows)
    del loaded
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return rows


def _agreement(rows: list[dict]) -> None:
    """Share of pages whose batched text equals the text read alone (bf16: padding changes the rounding)."""
    alone = rows[0]["texts"]
    for row in rows:
        same = sum(a == b for a, b in zip(alone, row["texts"]))
        row["same_text_as_batch_1"] = f"{same}/{len(alone)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path)
    source.add_argument("--from-meta", type=Path, help="config + tokenizer + processor files of a stand-in")
    source.add_argument("--compare", type=Path, nargs=2, metavar="JSON", help="two runs' --out files")
    parser.add_argument("--work", type=Path, default=Path("/tmp/vlmcli-gpu-bench"))
    parser.add_argument("--pages", type=int, default=32)
    parser.add_argument("--pages-at-batch-1", type=int, default=8, help="batch 1 is slow: time fewer pages")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--precisions", nargs="+", default=["none", "4bit"], help="none = bf16")
    parser.add_argument("--device", default="cuda", help="cpu: the same table on this machine")
    parser.add_argument("--cache", choices=["dynamic", "static"], default="dynamic", help="KV cache of generate")
    parser.add_argument("--out", type=Path, default=HERE / "gpu.json")
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)

    import torch

    from benchmarks.pages import text_page

    checkpoint = args.checkpoint or build_from_meta(args.from_meta, args.work / "standin")
    folder = args.work / "pages"
    folder.mkdir(parents=True, exist_ok=True)
    pages = [text_page(folder / f"page{n:03d}.png", seed=n) for n in range(args.pages)]
    rows = []
    for quantize in args.precisions:
        rows += run_precision(checkpoint, quantize, pages, args.new_tokens, args.batch_sizes, args.pages_at_batch_1,
                              args.device, args.cache)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    report = {"device": name, "torch": torch.__version__, "new_tokens": args.new_tokens,
              "rows": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    _print_table(report)
    return 0


def compare(first: Path, second: Path) -> int:
    """Pages whose text is the same in two runs (e.g. dynamic vs static cache), per precision and batch size."""
    if not (first.exists() and second.exists()):
        print(f"compare: {first if not first.exists() else second} is missing (that run did not finish)")
        return 1
    rows_a, rows_b = (json.loads(path.read_text())["rows"] for path in (first, second))
    for a, b in zip(rows_a, rows_b):
        same = sum(x == y for x, y in zip(a["texts"], b["texts"]))
        print(f"{a['precision']} batch {a['batch_size']}: {same}/{min(len(a['texts']), len(b['texts']))} pages "
              f"with the same text in {first.name} and {second.name}")
    return 0


def _print_table(report: dict) -> None:
    print(f"\n{report['device']}, torch {report['torch']}, {report['new_tokens']} new tokens per page")
    print("| precision | cache | batch | pages | pages/s | new tok/s | peak GPU GiB | weights GiB | same text as batch 1 "
          "| first call s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in report["rows"]:
        print(f"| {row['precision']} | {row['cache']} | {row['batch_size']} | {row['pages']} | {row['pages_per_s']} | "
              f"{row['new_tokens_per_s']} | {row['peak_gpu_gib']} | {row['weights_gib']} | "
              f"{row['same_text_as_batch_1']} | {row['first_call_s'] or '-'} |")


if __name__ == "__main__":
    sys.exit(main())
