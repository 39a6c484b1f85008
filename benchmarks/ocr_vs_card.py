"""One A4 page through `vlmcli ocr` and through the SmolVLM-256M-Instruct model card's snippet.

    .venv/bin/python benchmarks/ocr_vs_card.py [--checkpoint DIR] [--new-tokens N] [--out results.json]

Each contender runs in its own process (so peak RSS is its own), on the same
A4 page at 150 dpi, forced to the same number of new tokens (min = max), on a
random-weight stand-in with SmolVLM-256M-Instruct's architecture and processor
(built by make_standin.py if missing). Prints a table and writes JSON.
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

REPO = Path(__file__).resolve().parents[1]
PROMPT = "Can you describe this image?"  # the card's question


def make_a4_page(path: Path, dpi: int = 150) -> Path:
    """A dense A4 text page: 11-pt lines of words and numbers, black on white."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = round(8.27 * dpi), round(11.69 * dpi)
    page = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(page), ImageFont.load_default(size=round(11 * dpi / 72))
    words = "invoice total amount due date reference payment account balance order item quantity".split()
    for row, top in enumerate(range(round(dpi * 0.8), height - round(dpi * 0.8), round(16 * dpi / 72))):
        line = " ".join(words[(row * 7 + k) % len(words)] for k in range(9)) + f" {row * 37 % 1000:>4}.{row % 100:02d}"
        draw.text((round(dpi * 0.8), top), line, fill="black", font=font)
    page.save(path)
    return path


def run_card(checkpoint: str, page: str, new_tokens: int, dtype: str, attn: str) -> dict:
    """The model card's snippet as written (only the model id, the image and min/max tokens differ)."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    started = time.perf_counter()
    image = Image.open(page)
    processor = AutoProcessor.from_pretrained(checkpoint)
    model = AutoModelForImageTextToText.from_pretrained(
        checkpoint, torch_dtype=getattr(torch, dtype), _attn_implementation=attn).to("cpu")
    loaded = time.perf_counter()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, images=[image], return_tensors="pt").to("cpu")
    generated_ids = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    processor.batch_decode(generated_ids, skip_special_tokens=True)
    done = time.perf_counter()
    return {"load_s": loaded - started, "page_s": done - loaded,
            "image_tokens": int((inputs["input_ids"] == model.config.image_token_id).sum()),
            "new_tokens": int(generated_ids.shape[1] - inputs["input_ids"].shape[1])}


def run_vlmcli(checkpoint: str, page: str, new_tokens: int, dtype: str) -> dict:
    """`vlmcli ocr PAGE` through the service layer, with min = max new tokens."""
    from vlmcli import app, model  # noqa: F401 - import torch/transformers before the clock, as the card does
    from vlmcli.config import DType, GenerationSpec, ModelSpec
    from vlmcli.prompts import OCR_PROMPT

    started = time.perf_counter()
    run = app.RunSpec(model=ModelSpec(model_id=checkpoint, dtype=DType(dtype), offline=True),
                      generation=GenerationSpec(max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                                repetition_min_tokens=10**9))
    loaded = app.load_model(run)
    ref = app.page_refs(Path(page), None, run.pdf)[0]
    after_load = time.perf_counter()
    result = app.transcribe_page(loaded, ref, OCR_PROMPT, run)
    return {"load_s": after_load - started, "page_s": time.perf_counter() - after_load,
            "image_tokens": result.image_tokens, "new_tokens": result.new_tokens, "dtype": str(loaded.dtype)}


CONTENDERS = {
    "vlmcli ocr (dtype auto)": ("vlmcli", "auto", None),
    "vlmcli ocr (float32)": ("vlmcli", "float32", None),
    "card snippet (bfloat16, eager)": ("card", "bfloat16", "eager"),
    "card snippet in float32 + sdpa": ("card", "float32", "sdpa"),
}


def child(kind: str, checkpoint: str, page: str, new_tokens: int, dtype: str, attn: str | None) -> None:
    result = run_vlmcli(checkpoint, page, new_tokens, dtype) if kind == "vlmcli" else \
        run_card(checkpoint, page, new_tokens, dtype, attn)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def help_wall_s(runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vlmcli", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="/tmp/standin")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--only", action="append", help="run only these contenders (by name)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/ocr_vs_card.json"))
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, checkpoint, page, tokens, dtype, attn = args.child
        return child(kind, checkpoint, page, int(tokens), dtype, None if attn == "-" else attn)
    if not Path(args.checkpoint, "config.json").exists():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_standin.py"), args.checkpoint], check=True)
    page = make_a4_page(Path("/tmp/vlmcli-a4-150dpi.png"))
    rows = {"vlmcli --help (median of 5)": {"page_s": help_wall_s()}}
    for name, (kind, dtype, attn) in CONTENDERS.items():
        if args.only and name not in args.only:
            continue
        command = [sys.executable, __file__, "--child", kind, args.checkpoint, str(page), str(args.new_tokens),
                   dtype, attn or "-"]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows[name] = json.loads(output.strip().splitlines()[-1])
        print(f"{name:34} {json.dumps(rows[name])}", file=sys.stderr, flush=True)
    args.out.write_text(json.dumps(rows, indent=2))
    for name, row in rows.items():
        print(f"{name:34} " + "  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
