"""What each contender of the speed benchmark runs, in its own process (`python -m benchmarks.speed --child`).

Each child takes (checkpoint, page or source, new tokens, dtype, one more argument of its own) and returns one
JSON-able row; benchmarks/speed.py starts them, alternates the rounds and reports.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

CARD_PROMPT = "Can you describe this image?"
DECODE_FLOAT16 = "decode-float16"  # a vlmcli row's last argument: --decode-dtype float16, not quantized


def child_vlmcli_without(checkpoint: str, page: str, tokens: int, dtype: str, levers: str) -> dict:
    """vlmcli's page with these levers turned off (VLMCLI_SKIP_LEVERS): each lever's ablation."""
    with _levers_skipped(levers):
        return {**child_vlmcli(checkpoint, page, tokens, dtype, "none"), "skipped_levers": levers}


def child_vlmcli(checkpoint: str, page: str, tokens: int, dtype: str, quantize: str) -> dict:
    """`vlmcli ocr PAGE` through the pipeline: load, then render/preprocess and generate one page."""
    from benchmarks import speed_report
    from vlmcli import model
    from vlmcli.inputs.documents import page_refs
    from vlmcli.model.generate import (
        generate_from_inputs,  # torch/transformers imported before the clock
    )
    from vlmcli.pipeline.page import prepare_page
    from vlmcli.prompts import OCR_PROMPT

    started = time.perf_counter()
    run = run_spec(checkpoint, dtype, quantize, tokens)
    loaded = model.load(run.model, run.split)
    loaded_at = time.perf_counter()
    ref = page_refs(Path(page), None, run.pdf)[0]
    band_inputs = prepare_page(loaded, ref, OCR_PROMPT, run).inputs
    prepared_at = time.perf_counter()
    result = generate_from_inputs(loaded, band_inputs[0], run.generation)
    return {"load_s": loaded_at - started, "page_s": time.perf_counter() - loaded_at,
            "first_token_s": prepared_at - loaded_at + result.first_token_s,
            "decode_tok_s": speed_report.decode_tok_s(result),
            "image_tokens": result.image_tokens, "prompt_tokens": result.prompt_tokens,
            "new_tokens": result.new_tokens, "dtype": str(loaded.dtype).replace("torch.", ""),
            "quantize": run.model.quantize.value, "decode_dtype": run.model.decode_dtype.value,
            "token_ids": list(result.token_ids)}


def child_vlmcli_pdf(checkpoint: str, pdf: str, tokens: int, dtype: str, quantize: str) -> dict:
    """`vlmcli ocr FILE.pdf`: all pages, model loaded once, next page prepared while this one generates."""
    from vlmcli import model
    from vlmcli.pipeline.results import PageResult
    from vlmcli.pipeline.transcribe import transcribe
    from vlmcli.prompts import OCR_PROMPT

    run = run_spec(checkpoint, dtype, quantize, tokens)
    load = model.load
    started = {}

    def timed_load(*args, **kwargs):
        loaded = load(*args, **kwargs)
        started["t"] = time.perf_counter()
        return loaded

    model.load = timed_load
    pages = list(transcribe([Path(pdf)], OCR_PROMPT, run))
    assert all(isinstance(p, PageResult) for p in pages), pages
    elapsed = time.perf_counter() - started["t"]
    return {"pages": len(pages), "page_s": elapsed / len(pages), "image_tokens": pages[0].image_tokens,
            "new_tokens": pages[0].new_tokens}


def child_ask(checkpoint: str, page: str, tokens: int, dtype: str, quantize: str) -> dict:
    from vlmcli.model import generate  # noqa: F401 - torch/transformers imported before the clock
    from vlmcli.pipeline.ask import ask

    run = run_spec(checkpoint, dtype, quantize, tokens)
    started = time.perf_counter()
    answer = ask([Path(page)], "What is the total amount due?", run)
    return {"page_s": time.perf_counter() - started, "image_tokens": answer.image_tokens,
            "new_tokens": answer.new_tokens, "note": "includes model load"}


def child_card(checkpoint: str, page: str, tokens: int, dtype: str, attn: str) -> dict:
    """The model card's snippet as written; only the model id, the image and min/max new tokens differ."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    started = time.perf_counter()
    image = Image.open(page)
    processor = AutoProcessor.from_pretrained(checkpoint)
    model = AutoModelForImageTextToText.from_pretrained(
        checkpoint, torch_dtype=getattr(torch, dtype), _attn_implementation=attn).to("cpu")
    loaded = time.perf_counter()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": CARD_PROMPT}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, images=[image], return_tensors="pt").to("cpu")
    generated_ids = model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens)
    processor.batch_decode(generated_ids, skip_special_tokens=True)
    return {"load_s": loaded - started, "page_s": time.perf_counter() - loaded,
            "image_tokens": int((inputs["input_ids"] == model.config.image_token_id).sum()),
            "new_tokens": int(generated_ids.shape[1] - inputs["input_ids"].shape[1]), "dtype": dtype}


def child_text_decode(checkpoint: str, context: str, tokens: int, dtype: str, _: str) -> dict:
    """Decode speed of the bare language model with the same weights, context length and KV cache, and of the
    VLM around it (vlmcli's layers) on the same context, alternated in one process (separate processes on this shared machine
    differ by 10-15 % from run to run, more than what the VLM could add per token)."""
    import torch
    from transformers import LlamaForCausalLM

    from vlmcli import model
    from vlmcli.model.levers import split_decode

    run = run_spec(checkpoint, dtype, "none", tokens)
    vlm = model.load(run.model, run.split).model
    with torch.device("meta"):
        text = LlamaForCausalLM(vlm.config.text_config)
    text.model, text.lm_head = vlm.model.text_model, vlm.lm_head  # the same tensors, not a copy
    text.eval()
    ids = torch.randint(100, min(40000, text.config.vocab_size), (1, int(context)))

    def decode_tok_s(model) -> float:
        seconds = []
        with torch.inference_mode():
            for new in (1, tokens):
                started = time.perf_counter()
                # The same cache as vlmcli's (static on a CPU), so the ratio isolates what the VLM adds per token.
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                               max_new_tokens=new, min_new_tokens=new, cache_implementation="static")
                seconds.append(time.perf_counter() - started)
        return (tokens - 1) / (seconds[1] - seconds[0])

    # The bare model computes as transformers does; the VLM as vlmcli loaded it (decode products split in float32).
    split = split_decode.unsplit_language_model(text) > 0  # its decoder layers are the VLM's: split again below
    rates = {"text": [], "vlm": []}
    for _ in range(2):
        rates["text"].append(decode_tok_s(text))
        if split:
            split_decode.split_language_model(vlm)
        rates["vlm"].append(decode_tok_s(vlm))
        split_decode.unsplit_language_model(text)
    return {"decode_tok_s": statistics.mean(rates["text"]), "vlm_decode_tok_s": statistics.mean(rates["vlm"]),
            "context": context, "dtype": dtype}


def child_doctags_decode(checkpoint: str, page: str, tokens: int, dtype: str, _: str) -> dict:
    """A granite-docling-sized model whose config says `use_cache: false`: decode speed as vlmcli generates (KV
    cache on) and as its config would have transformers generate, on the same prompt (one 512 px image)."""
    import torch
    from PIL import Image

    from vlmcli import model
    from vlmcli.model.generate import build_inputs, generate_from_inputs
    from vlmcli.prompts import DOCTAGS_PROMPT

    run = run_spec(checkpoint, dtype, "none", tokens)
    run = replace(run, split=replace(run.split, split=False))
    loaded = model.load(run.model, run.split)
    image = Image.open(page).convert("RGB")
    with_cache = generate_from_inputs(loaded, build_inputs(loaded, loaded.family.messages(DOCTAGS_PROMPT, 1), [image]),
                                      run.generation)
    inputs = build_inputs(loaded, loaded.family.messages(DOCTAGS_PROMPT, 1), [image])
    started = time.perf_counter()
    with torch.inference_mode():
        loaded.model.generate(**inputs, do_sample=False, max_new_tokens=tokens, min_new_tokens=tokens)
    without_s = time.perf_counter() - started
    return {"decode_tok_s": with_cache.new_tokens / with_cache.seconds, "config_decode_tok_s": tokens / without_s,
            "use_cache_in_config": loaded.model.generation_config.use_cache, "new_tokens": with_cache.new_tokens,
            "image_tokens": with_cache.image_tokens, "dtype": str(loaded.dtype).replace("torch.", "")}


def child_vlmcli_unpacked(checkpoint: str, page: str, tokens: int, dtype: str, quantize: str) -> dict:
    """vlmcli's float32 page with the vision tower's linear layers left to nn.Linear (MKL), as without the lever."""
    with _linear_unpacked():
        return {**child_vlmcli(checkpoint, page, tokens, dtype, quantize), "linear": "nn.Linear"}


def child_vlmcli_transposed(checkpoint: str, page: str, tokens: int, dtype: str, quantize: str) -> dict:
    """vlmcli's page with the vision tower's residual stream left transposed, as without levers/patch_layout.py."""
    with _levers_skipped("patch_layout"):
        return {**child_vlmcli(checkpoint, page, tokens, dtype, quantize), "vision_stream": "transposed"}


def child_openvino(checkpoint: str, page: str, tokens: int, _: str, weights: str) -> dict:
    from benchmarks import openvino_contender

    # OpenVINO converts transformers' own vision tower (its GELU is an op OpenVINO fuses), not vlmcli's levers.
    with _levers_skipped("packed_linear,sigmoid_gelu"):
        return openvino_contender.child(checkpoint, page, tokens, run_spec, weights)


def child_llamacpp(checkpoint: str, page: str, tokens: int, _: str, text_type: str) -> dict:
    from benchmarks import llamacpp_contender

    return llamacpp_contender.child(checkpoint, page, tokens, text_type)


def child_floor(checkpoint: str, page: str, tokens: int, dtype: str, _: str) -> dict:
    """The best rate of the model's own largest products (speed_report.gemm_shapes: the vision tower's and the
    language model's prefill linear layers, as F.linear computes them, all of torch's threads), best of 10 each;
    the floor of a page is its arithmetic at that rate."""
    import torch

    from benchmarks import speed_report

    torch_dtype = getattr(torch, dtype)
    rates = {}
    with torch.inference_mode():
        for name, (rows, inner, outer) in speed_report.gemm_shapes(checkpoint).items():
            x, w = torch.randn(rows, inner, dtype=torch_dtype), torch.randn(outer, inner, dtype=torch_dtype)
            for _ in range(3):
                torch.nn.functional.linear(x, w)
            best = min(timed(lambda: torch.nn.functional.linear(x, w)) for _ in range(10))
            rates[name] = 2 * rows * inner * outer / best / 1e9
    return {"gflop_s": max(rates.values()), "shape_gflop_s": {k: round(v, 1) for k, v in rates.items()},
            "dtype": dtype}


def child_process_vlmcli(checkpoint: str, page: str, tokens: int, dtype: str, _: str) -> dict:
    """A whole `vlmcli ocr PAGE` process, as the console script runs it (vlmcli.cli imported first), its length
    forced like the page rows'; the parent times the process from start to exit."""
    import sys

    import vlmcli.cli  # noqa: F401 - what the console script imports before anything else
    from vlmcli.jobs.ocr import OcrRequest, run_ocr
    from vlmcli.model.families.idefics import SMOLVLM

    run = run_spec(checkpoint, dtype, "none", tokens)
    summary = run_ocr(OcrRequest(inputs=(Path(page),), instruction=SMOLVLM.instruction(), run=run),
                      write=sys.stderr.write)
    return {"pages": summary.pages_ok}


def child_process_card(checkpoint: str, page: str, tokens: int, dtype: str, attn: str) -> dict:
    """The model card's snippet as a whole process (the parent times it from start to exit)."""
    child_card(checkpoint, page, tokens, dtype, attn)
    return {"pages": 1}


def child_matmul(_: str, __: str, ___: int, dtype: str, ____: str) -> dict:
    """GFLOP/s of a vision-encoder-shaped matmul (1024x768 @ 768x3072), best of 10."""
    import torch

    a, b = torch.randn(1024, 768, dtype=getattr(torch, dtype)), torch.randn(768, 3072, dtype=getattr(torch, dtype))
    for _ in range(3):
        a @ b
    best = min(timed(lambda: a @ b) for _ in range(10))
    return {"gflop_s": 2 * 1024 * 768 * 3072 / best / 1e9, "dtype": dtype}


CHILDREN = {"vlmcli": child_vlmcli, "vlmcli_pdf": child_vlmcli_pdf, "ask": child_ask, "card": child_card,
            "vlmcli_unpacked": child_vlmcli_unpacked,
            "vlmcli_transposed": child_vlmcli_transposed, "openvino": child_openvino, "llamacpp": child_llamacpp,
            "text_decode": child_text_decode, "doctags_decode": child_doctags_decode, "matmul": child_matmul,
            "floor": child_floor, "process_vlmcli": child_process_vlmcli, "process_card": child_process_card,
            "vlmcli_without": child_vlmcli_without}


def run_spec(checkpoint: str, dtype: str, quantize: str, tokens: int):
    """`quantize` is a --quantize value, or DECODE_FLOAT16 for unquantized weights with --decode-dtype float16."""
    from vlmcli.specs import DecodeDType, DType, Quant, RunSpec

    decode_dtype = DecodeDType.float16 if quantize == DECODE_FLOAT16 else DecodeDType.same
    quantize = Quant.none.value if quantize == DECODE_FLOAT16 else quantize
    # Forced length (min = max) so contenders compare; the repetition guard is off for the same reason.
    return RunSpec.from_options(model=checkpoint, dtype=DType(dtype), quantize=Quant(quantize), offline=True,
                                decode_dtype=decode_dtype, max_new_tokens=tokens, min_new_tokens=tokens,
                                repetition_min_tokens=10**9)


def _linear_unpacked():
    """Loads inside leave the vision tower's nn.Linear in place (levers/packed_linear.py skipped)."""
    return _levers_skipped("packed_linear")


@contextmanager
def _levers_skipped(names: str):
    """Loads inside skip these levers (VLMCLI_SKIP_LEVERS, levers/registry.py)."""
    from vlmcli.model.levers.registry import SKIP_ENV

    before = os.environ.get(SKIP_ENV)
    os.environ[SKIP_ENV] = names
    try:
        yield
    finally:
        if before is None:
            del os.environ[SKIP_ENV]
        else:
            os.environ[SKIP_ENV] = before


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
