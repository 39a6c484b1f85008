"""DeepSeek-OCR-2 (`deepseek_ocr2`, the native transformers port deepseek-community/DeepSeek-OCR-2): SAM and a
Qwen2-style visual encoder, a linear projector, a DeepSeek-V2 mixture-of-experts language model.

Its card calls the processor on a plain prompt, no chat template: `<image>\\n` then the instruction. For a whole
page the instruction is `<|grounding|>Convert the document to markdown.`: Markdown whose blocks each follow a
`<|ref|>label<|/ref|><|det|>[[x0, y0, x1, y1]]<|/det|>` on a 0..999 grid, so the special tokens are kept in the
decode and parsed (parsing.deepseek_grounding). `Free OCR.` (`--task free`) gives the text alone. Greedy, the
end-of-sentence token ends it, 8192 new tokens at most (its card's). Pages are read whole: the boxes are the
page's. Views: a 1024 px global view and up to 6 tiles of 768 px; `--no-split`, the global view alone
(resolution.TileGrid). LoRA: the language model's attention, its dense MLP and its shared experts (the routed
experts are fused parameters, not Linear layers); in stages 1-2 also SAM's and the visual encoder's layers; the
projector trains fully.
"""

from __future__ import annotations

from vlmcli.model.families import MARKDOWN, RAW, Family, LoraTargets
from vlmcli.model.families.resolution import TileGrid
from vlmcli.specs import DOCTAGS_REPETITION_MIN_TOKENS, PageTranscription

GROUNDING_PROMPT = "<|grounding|>Convert the document to markdown."
FREE_OCR_PROMPT = "Free OCR."
MAX_NEW_TOKENS = 8192  # the card's max_tokens for a page

DEEPSEEK_OCR2 = Family(
    name="deepseek_ocr2", summary="DeepSeek-OCR-2: Markdown with a box per block (grounding), no chat template",
    model_types=frozenset({"deepseek_ocr2"}),
    resolution=TileGrid(tile_size_key="tile_size", tile_sizes_unsplit_view=True),
    lora=LoraTargets(
        text=r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(shared_experts\.)?(gate|up|down)_proj)",
        vision=(r".*vision_tower\.(sam_encoder\.layers\.\d+\.(attn\.(qkv|proj)|mlp\.lin[12])"
                r"|vision_encoder\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj))"),
        connector=("multi_modal_projector",)),
    output=MARKDOWN, ocr_prompt=GROUNDING_PROMPT, handwriting_prompt=FREE_OCR_PROMPT,
    tasks={"markdown": GROUNDING_PROMPT, "free": FREE_OCR_PROMPT}, layout=RAW, keep_special_tokens=True,
    # A table's cells repeat as HTML (<td></td>...): a loop must be long before the guard ends it, as for DocTags.
    transcription=PageTranscription(MAX_NEW_TOKENS, DOCTAGS_REPETITION_MIN_TOKENS, whole_pages=True),
    parser="deepseek_grounding",
    # Tiles of every row of a batch go in one tensor, with their count per row (the global views are stacked).
    concatenated_inputs=("pixel_values_local", "num_local_patches"))

FAMILIES = (DEEPSEEK_OCR2,)
