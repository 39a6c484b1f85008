"""The Qwen-VL family: Qwen2.5-VL (the generic profile of a `qwen2_5_vl` checkpoint), the two OCR models trained on
it (olmOCR-2, Nanonets-OCR2: the same architecture and files, so they are chosen by name: their `--model` alias or
`--family`, never recognised), and Qwen3-VL.

What they share: the processor scales a page into a budget of pixels (PixelBudget) and returns its patches as one
flat list with a grid per image, which a batch joins (`concatenated_inputs`); the language model sits under
`model.language_model`, the vision tower under `model.visual`, whose patch merger is the connector.
"""

from __future__ import annotations

from vlmcli.model.families import MARKDOWN, TEXT_FIRST, Family, LoraTargets
from vlmcli.model.families.resolution import PixelBudget
from vlmcli.specs import PageTranscription

QWEN_INPUTS = ("pixel_values", "image_grid_thw")  # a flat list of patches and each image's (t, h, w) grid
QWEN2_5_VL_LORA = LoraTargets(
    vision=r".*visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(gate|up|down)_proj)", connector=("merger",))
# Qwen3-VL: the vision MLP is linear_fc1/2; deepstack adds a merger for each of its layers besides the last one.
QWEN3_VL_LORA = LoraTargets(
    vision=r".*visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.linear_fc[12])",
    connector=("merger", *(f"deepstack_merger_list.{index}" for index in range(3))))

# olmocr.prompts.build_no_anchoring_v4_yaml_prompt(): the prompt olmOCR-2 was trained on, before the image.
OLMOCR_PROMPT = (
    "Attached is one page of a document that you must process. Just return the plain text representation of this "
    "document as if you were reading it naturally. Convert equations to LateX and tables to HTML.\n"
    "If there are any figures or charts, label them with the following markdown syntax ![Alt text describing the "
    "contents of the figure](page_startx_starty_width_height.png)\n"
    "Return your output as markdown, with a front matter section on top specifying values for the "
    "primary_language, is_rotation_valid, rotation_correction, is_table, and is_diagram parameters.")
OLMOCR_EDGE_PX = 1288  # the card renders a page with its longest side at this many pixels
# Its toolkit asks for 8000 new tokens; HTML tables repeat their cell tags legitimately, so a loop must cover an
# eighth of that before the guard ends it (as for DocTags).
OLMOCR_TRANSCRIPTION = PageTranscription(max_new_tokens=8000, repetition_min_tokens=1000, whole_pages=True)

# Nanonets-OCR2-3B's card: its system turn and prompt, images first.
NANONETS_SYSTEM = "You are a helpful assistant."
NANONETS_PROMPT = (
    "Extract the text from the above document as if you were reading it naturally. Return the tables in html "
    "format. Return the equations in LaTeX representation. If there is an image in the document and image caption "
    "is not present, add a small description of the image inside the <img></img> tag; otherwise, add the image "
    "caption inside <img></img>. Watermarks should be wrapped in brackets. Ex: <watermark>OFFICIAL COPY</watermark>. "
    "Page numbers should be wrapped in brackets. Ex: <page_number>14</page_number> or "
    "<page_number>9/22</page_number>. Prefer using ☐ and ☑ for check boxes.")
NANONETS_TRANSCRIPTION = PageTranscription(max_new_tokens=15000, repetition_min_tokens=1875, whole_pages=True)

QWEN3_VL_PROMPT = "Read all the text in the image."  # the card's OCR example

QWEN2_5_VL = Family(
    name="qwen2_5_vl", summary="Qwen2.5-VL: a general VLM, its chat template, text out",
    model_types=frozenset({"qwen2_5_vl"}), resolution=PixelBudget(), lora=QWEN2_5_VL_LORA,
    concatenated_inputs=QWEN_INPUTS)
OLMOCR2 = Family(
    name="olmocr2", summary="olmOCR-2 (Qwen2.5-VL): Markdown, HTML tables, LaTeX, with a front matter (language, "
                            "rotation, table, diagram)",
    model_types=frozenset({"qwen2_5_vl"}), recognisable=False, resolution=PixelBudget(default_edge_px=OLMOCR_EDGE_PX),
    fit_pages=True, lora=QWEN2_5_VL_LORA, output=MARKDOWN, ocr_prompt=OLMOCR_PROMPT,
    handwriting_prompt=OLMOCR_PROMPT, layout=TEXT_FIRST, transcription=OLMOCR_TRANSCRIPTION, parser="front_matter",
    concatenated_inputs=QWEN_INPUTS)
NANONETS_OCR2 = Family(
    name="nanonets_ocr2", summary="Nanonets-OCR2 (Qwen2.5-VL): Markdown, HTML tables, LaTeX, tagged page numbers, "
                                  "watermarks, signatures, images, checkboxes",
    model_types=frozenset({"qwen2_5_vl"}), recognisable=False, resolution=PixelBudget(), lora=QWEN2_5_VL_LORA,
    output=MARKDOWN, ocr_prompt=NANONETS_PROMPT, handwriting_prompt=NANONETS_PROMPT, system_prompt=NANONETS_SYSTEM,
    transcription=NANONETS_TRANSCRIPTION, parser="nanonets_tags", concatenated_inputs=QWEN_INPUTS)
QWEN3_VL = Family(
    name="qwen3_vl", summary="Qwen3-VL: a general VLM for questions (patch 16), text out",
    model_types=frozenset({"qwen3_vl"}), resolution=PixelBudget(), lora=QWEN3_VL_LORA, ocr_prompt=QWEN3_VL_PROMPT,
    concatenated_inputs=QWEN_INPUTS)

FAMILIES = (QWEN2_5_VL, OLMOCR2, NANONETS_OCR2, QWEN3_VL)
