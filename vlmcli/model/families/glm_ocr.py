"""GLM-OCR (zai-org/GLM-OCR): a CogViT tower and a GLM language model that read text, formulas and tables as
Markdown, LaTeX and HTML.

The card's recipe: the image, then `Text Recognition:` (or the `--task`'s prompt) through the chat template, decoded
with the special tokens kept. What the user sees keeps them too, except the end-of-turn tokens that stop the answer
(`<|endoftext|>`, `<|user|>`: generation_config's eos), which end it rather than belong to it. The resolution knob is
Glm46V's pixel budget, which bounds an image's two temporal frames together (a page gets half of it).
"""

from __future__ import annotations

from vlmcli.model.families import MARKDOWN, Family, LoraTargets
from vlmcli.model.families.resolution import PixelBudget
from vlmcli.specs import PageTranscription

GLM_TASKS = {"text": "Text Recognition:", "formula": "Formula Recognition:", "table": "Table Recognition:"}

GLM_OCR = Family(
    name="glm_ocr", summary="GLM-OCR: text, formulas and tables by --task, as Markdown, LaTeX and HTML",
    model_types=frozenset({"glm_ocr"}), resolution=PixelBudget(per_frame=True), output=MARKDOWN,
    ocr_prompt=GLM_TASKS["text"], handwriting_prompt=GLM_TASKS["text"], tasks=GLM_TASKS,
    keep_special_tokens=True, answer_end="<|user|>",
    transcription=PageTranscription(max_new_tokens=8192, whole_pages=True),
    concatenated_inputs=("pixel_values", "image_grid_thw"),
    # GLM's MLP fuses gate and up into one `gate_up_proj`; the merger after the CogViT blocks is the connector.
    lora=LoraTargets(
        text=r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate_up|down)_proj)",
        vision=r".*visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(gate|up|down)_proj)",
        connector=("merger",)),
    vision_parts=("visual",))

FAMILIES = (GLM_OCR,)
