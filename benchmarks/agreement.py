"""Token agreement of vlmcli's lossy options with float32, over several pages and prompts, with decode speeds.

    .venv/bin/python -m benchmarks.agreement [--checkpoint DIR] [--new-tokens 128] [--option 4bit]
                                              [--out benchmarks/agreement.json]

The checkpoint is the SmolVLM-256M stand-in whose language model is the real
SmolLM2-135M-Instruct (`python -m tools.models standin DIR --real-text`, built if
missing): its vision tower is random, so what it "reads" is noise, but its decoding
has a real language model's confidence, where the all-random stand-in's greedy
tokens repeat one token and agree for any option. Pages are read with the OCR
prompt and a question; QUESTIONS about a small blank image draw the language
model's own text (pages tend to make it loop). Each page and prompt is read
greedily by the float32 model and by each option, one after the other in one
process, forced to the same length: agreement is the tokens before the first
difference and the share of equal positions; the options' decode rates are measured
side by side with float32's. The float32 reference computes its decode products
with nn.Linear, as transformers does. Options: `split-decode` (vlmcli's own
float32: the decode products split across threads, lossless up to the summation
order), `decode-float16` (--decode-dtype float16), `4bit`, `8bit` (--quantize).
Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.speed_report import decode_tok_s, leading_equal

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROMPTS = ("ocr", "What is the total amount due?")
SPLIT_DECODE = "split-decode"  # vlmcli's float32 as loaded; the reference "none" has its decode split undone
# Asked about a small blank image (one sub-image): the answers are the language model's own text, not loops.
QUESTIONS = ("What is the capital of France?", "Write a haiku about the sea.", "Explain photosynthesis briefly.",
             "List three prime numbers and say why they are prime.", "How do I make pancakes?",
             "What is 17 times 3? Show your steps.", "Describe a cat to a child.", "Why is the sky blue?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="/tmp/standin-real")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--option", action="append", choices=[SPLIT_DECODE, "decode-float16", "4bit", "8bit"],
                        help="an option to compare (repeatable; default split-decode and decode-float16)")
    parser.add_argument("--pages", nargs="+", default=["dense", "sparse", "photo"])
    parser.add_argument("--questions", type=int, default=len(QUESTIONS), help="how many QUESTIONS to ask too")
    parser.add_argument("--out", type=Path, default=HERE / "agreement.json")
    args = parser.parse_args()
    if not Path(args.checkpoint, "config.json").exists():
        subprocess.run([sys.executable, "-m", "tools.models", "standin", args.checkpoint, "--no-check",
                        "--real-text"], check=True, cwd=ROOT)
    from benchmarks.pages import make_all
    from benchmarks.speed_children import DECODE_FLOAT16, run_spec
    from vlmcli import model
    from vlmcli.inputs.documents import page_refs
    from vlmcli.model.generate import generate_from_inputs
    from vlmcli.model.levers import split_decode
    from vlmcli.pipeline.page import prepare_page
    from vlmcli.prompts import OCR_PROMPT

    options = args.option or [SPLIT_DECODE, DECODE_FLOAT16]
    pages = make_all(Path("/tmp/vlmcli-bench-pages"))
    runs = {name: run_spec(args.checkpoint, "float32", "none" if name == SPLIT_DECODE else name, args.new_tokens)
            for name in ["none", *options]}
    loaded = {name: model.load(run.model, run.split) for name, run in runs.items()}
    split_decode.unsplit_language_model(loaded["none"].model)
    pages["small"] = _blank(Path("/tmp/vlmcli-bench-pages/small.png"))
    asked = [(page, prompt) for page in args.pages for prompt in PROMPTS]
    asked += [("small", question) for question in QUESTIONS[:args.questions]]
    cases = []
    for page, prompt in asked:
        instruction = OCR_PROMPT if prompt == "ocr" else prompt
        ref = page_refs(pages[page], None, runs["none"].pdf)[0]
        inputs = prepare_page(loaded["none"], ref, instruction, runs["none"]).inputs[0]
        read = {name: generate_from_inputs(loaded[name], inputs, runs[name].generation) for name in runs}
        cases.append({"page": page, "prompt": prompt, **_compared(read, options)})
        print(json.dumps(cases[-1]), file=sys.stderr, flush=True)
    summary = {"new_tokens": args.new_tokens, "cases": len(cases)}
    for name in options:
        summary[f"leading_equal: {name}"] = [c[f"leading_equal: {name}"] for c in cases]
        summary[f"decode_speedup: {name}"] = statistics.median(
            c[f"decode_tok_s: {name}"] / c["decode_tok_s: none"] for c in cases)
    args.out.write_text(json.dumps({"cases": cases, "summary": summary}, indent=1))
    print(json.dumps(summary, indent=1))


def _compared(read: dict, options: list[str]) -> dict:
    """Decode rates of every run, and how far each option's tokens follow float32's ("none")."""
    theirs = list(read["none"].token_ids)
    case = {"text_float32": read["none"].text[:200],
            **{f"decode_tok_s: {name}": decode_tok_s(result) for name, result in read.items()}}
    for name in options:
        ours = list(read[name].token_ids)
        case[f"leading_equal: {name}"] = leading_equal(ours, theirs)
        case[f"equal_share: {name}"] = sum(a == b for a, b in zip(ours, theirs)) / max(len(theirs), 1)
    return case


def _blank(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (384, 384), "white").save(path)
    return path


if __name__ == "__main__":
    main()
