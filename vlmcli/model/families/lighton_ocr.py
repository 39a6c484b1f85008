"""LightOnOCR-2 (lightonai/LightOnOCR-2-1B and its bbox variants): a Pixtral vision tower and a Qwen3 language model
that write a whole page as Markdown (HTML tables, LaTeX) from the page image alone.

The card's recipe: the image as the whole user turn through the checkpoint's chat template (no instruction: the card
warns that a prompt tends to be repeated back), decoded without special tokens. Pages are rendered for the
processor's `size.longest_edge`, which the published checkpoints set to the card's 1540 px, and read whole. The
bbox variants write `![image](image_N.png)x0,y0,x1,y1` for each figure on a 0..1000 grid: the same architecture and
tokenizer, so one profile reads both and its parser takes the boxes out (a page without them parses to itself).
"""

from __future__ import annotations

from vlmcli.model.families import MARKDOWN, TEXT_PROJECTIONS, Family, LoraTargets
from vlmcli.model.families.resolution import LongestEdge
from vlmcli.specs import PageTranscription

# The card's vLLM example allows 4096 new tokens for a page.
LIGHTON_TRANSCRIPTION = PageTranscription(max_new_tokens=4096, whole_pages=True)

LIGHTON_OCR = Family(
    name="lighton_ocr", summary="LightOnOCR-2 (and -bbox): a page image in, Markdown with HTML tables and LaTeX "
                                "out; the bbox variants box each figure",
    model_types=frozenset({"lighton_ocr"}), resolution=LongestEdge(), output=MARKDOWN,
    ocr_prompt=None, handwriting_prompt=None, transcription=LIGHTON_TRANSCRIPTION, parser="lighton_bbox",
    # Stages 1-2 adapt the Pixtral tower's attention and MLP too; the projector (patch merger + MLP) is trained
    # fully, as Idefics' connector is.
    lora=LoraTargets(
        text=TEXT_PROJECTIONS,
        vision=r".*vision_encoder\.transformer\.layers\.\d+\."
               r"(attention\.(q|k|v|o)_proj|feed_forward\.(gate|up|down)_proj)",
        connector=("vision_projection",)),
    vision_parts=("vision_encoder", "vision_projection"))

FAMILIES = (LIGHTON_OCR,)
