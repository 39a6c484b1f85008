"""PaddleOCR-VL and PaddleOCR-VL-1.5 (PaddlePaddle/PaddleOCR-VL*): a NaViT SigLIP tower and an ERNIE-4.5 language
model that read one element of a page (text, a table, a formula, a chart) for the instruction its card names.

The card's recipe: the image, then the task's prompt (`OCR:` for a page's text) through the chat template; decoded
as transformers' docs do, the final end token dropped and the other special tokens kept. `--task` picks the
prompt; 1.5 adds `spotting` and `seal`, which PaddleOCR-VL 1.0 was not trained on (the two share the architecture,
so the checkpoint cannot tell vlmcli which it is). The resolution knob is the image processor's pixel budget.
"""

from __future__ import annotations

from vlmcli.model.families import MARKDOWN, TEXT_PROJECTIONS, Family, LoraTargets
from vlmcli.model.families.resolution import PixelBudget
from vlmcli.specs import PageTranscription

PADDLE_TASKS = {"ocr": "OCR:", "table": "Table Recognition:", "formula": "Formula Recognition:",
                "chart": "Chart Recognition:", "spotting": "Spotting:", "seal": "Seal Recognition:"}

PADDLEOCR_VL = Family(
    name="paddleocr_vl", summary="PaddleOCR-VL / 1.5: text, tables, formulas and charts by --task (1.5 adds "
                                 "spotting and seals)",
    model_types=frozenset({"paddleocr_vl"}), resolution=PixelBudget(), output=MARKDOWN,
    ocr_prompt=PADDLE_TASKS["ocr"], handwriting_prompt=PADDLE_TASKS["ocr"], tasks=PADDLE_TASKS,
    keep_special_tokens=True, transcription=PageTranscription(max_new_tokens=4096, whole_pages=True),
    # The tower's patches are one flat list per batch, with a (t, h, w) grid per image.
    concatenated_inputs=("pixel_values", "image_grid_thw"),
    lora=LoraTargets(
        text=TEXT_PROJECTIONS,
        vision=r".*visual\.vision_model\.encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])",
        connector=("projector",)),
    vision_parts=("visual", "projector"))

FAMILIES = (PADDLEOCR_VL,)
