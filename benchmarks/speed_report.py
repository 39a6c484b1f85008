"""The speed benchmark's table and summary: a page's arithmetic, the floor, and ratios between rows."""

from __future__ import annotations

import json
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


def summary(rows: dict, checkpoint: str, auto: str) -> dict:
    page, summary = rows.get("vlmcli ocr, dense A4", {}), {"auto_dtype": auto}
    doctags = rows.get("granite-docling stand-in decode, KV cache vs its config", {})
    if "config_decode_tok_s" in doctags:
        summary["doctags_kv_cache_speedup"] = doctags["decode_tok_s"] / doctags["config_decode_tok_s"]
    if "page_s" not in page:
        return summary
    flops = page_flops(checkpoint, page["image_tokens"], page["prompt_tokens"], page["new_tokens"])
    summary["page_tflop"] = flops / 1e12
    for dtype in ("float32", "bfloat16"):
        rate = rows.get(f"matmul {dtype}", {}).get("gflop_s")
        if rate:
            summary[f"floor_s_{dtype}"] = flops / (rate * 1e9)
            summary[f"vlmcli_vs_floor_{dtype}"] = page["page_s"] / summary[f"floor_s_{dtype}"]
    for name, key in (("card snippet as written (bf16, eager)", "speedup_vs_card"),
                      ("card snippet, float32 + sdpa", "speedup_vs_card_float32"),
                      ("OpenVINO fp32 vision + vlmcli LM", "speedup_vs_openvino_vision"),
                      ("OpenVINO int8-weight vision + vlmcli LM", "speedup_vs_openvino_int8_vision"),
                      ("llama.cpp, f32 text + f32 mmproj", "speedup_vs_llamacpp_f32"),
                      ("llama.cpp, q8_0 text + f32 mmproj", "speedup_vs_llamacpp_q8_0"),
                      ("vlmcli float32, vision linear unpacked", "speedup_vs_unpacked_linear"),
                      ("vlmcli ocr, dense A4, vision stream transposed", "speedup_vs_transposed_stream")):
        if "page_s" in rows.get(name, {}):
            summary[key] = rows[name]["page_s"] / page["page_s"]
    reference = rows.get("vlmcli ocr, dense A4, --dtype float32", page)
    for name, row in rows.items():  # lossy rows: how many of the float32 page's tokens they repeat before differing
        lossy = row.get("weights") == "int8" or row.get("decode_dtype") == "float16"
        if lossy or (row.get("quantize") or "none") != "none":
            summary[f"leading_equal_tokens: {name}"] = _leading_equal(row, reference)
    half = rows.get("vlmcli ocr, dense A4, --decode-dtype float16", {})
    if "decode_tok_s" in half and "decode_tok_s" in reference:
        summary["decode_float16_vs_float32"] = half["decode_tok_s"] / reference["decode_tok_s"]
        summary["page_float16_decode_vs_float32"] = reference["page_s"] / half["page_s"]
    text = rows.get(f"bare text model decode ({auto})", {})
    if "decode_tok_s" in text:
        summary["decode_vs_text_model"] = page["decode_tok_s"] / text["decode_tok_s"]
        summary["decode_vs_text_model_same_process"] = text["vlm_decode_tok_s"] / text["decode_tok_s"]
    pdf = rows.get("vlmcli ocr, 4-page PDF (per page)", {})
    if "page_s" in pdf:
        summary["pdf_page_vs_single_page"] = pdf["page_s"] / page["page_s"]
        # The same path for one page: rasterizing it, which a PNG skips, then no next page to overlap.
        if "page_s" in rows.get("vlmcli ocr, 1-page PDF", {}):
            summary["pdf_page_vs_one_page_pdf"] = pdf["page_s"] / rows["vlmcli ocr, 1-page PDF"]["page_s"]
    return summary


def _leading_equal(row: dict, reference: dict) -> str:
    theirs = reference.get("token_ids", [])
    return f"{leading_equal(row.get('token_ids', []), theirs)}/{len(theirs)}"


def print_table(rows: dict, summary: dict) -> None:
    columns = ("page_s", "first_token_s", "decode_tok_s", "peak_rss_gb", "image_tokens", "load_s", "gflop_s", "wall_s")
    print(f"{'':44}" + "".join(f"{c:>14}" for c in columns))
    for name, row in rows.items():
        cells = [f"{row[c]:14.2f}" if isinstance(row.get(c), float) else f"{row.get(c, '-')!s:>14}" for c in columns]
        print(f"{name:44}" + "".join(cells))
    print(json.dumps(summary, indent=1))
