"""The Idefics family: SmolVLM / Idefics3, Idefics2, and the DocTags checkpoints built on Idefics3
(granite-docling-258M, SmolDocling-256M), which their tokenizer's added DocTags tags tell apart."""

from __future__ import annotations

from vlmcli.model.families import DOCTAGS, Family, LoraTargets
from vlmcli.model.families.resolution import Crops, Tiles
from vlmcli.prompts import DOCTAGS_PROMPT
from vlmcli.specs import DOCTAGS_TRANSCRIPTION

END_OF_UTTERANCE = "<end_of_utterance>"
DOCTAGS_END = "</doctag>"
# Tags every DocTags tokenizer adds; a chat model's tokenizer has none of them.
DOCTAGS_TOKENS = ("<doctag>", DOCTAGS_END, "<otsl>")
# Idefics2, Idefics3 and SmolVLM in transformers 5: the vision tower under `vision_model`, the language model under
# `text_model`, the connector (pixel shuffle + linear; Idefics2: MLP + perceiver) new in the VLM, trained fully.
IDEFICS_LORA = LoraTargets(
    text=r".*text_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)",
    vision=r".*vision_model\.encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])",
    connector=("connector",))
IDEFICS_VISION = ("vision_model", "connector")

DOCTAGS_FAMILY = Family(
    name="doctags", summary="granite-docling-258M, SmolDocling-256M: DocTags (structure and boxes) for a page",
    model_types=frozenset({"idefics3", "smolvlm"}), tokenizer_marks=DOCTAGS_TOKENS, resolution=Tiles(),
    lora=IDEFICS_LORA, output=DOCTAGS, ocr_prompt=DOCTAGS_PROMPT, handwriting_prompt=DOCTAGS_PROMPT,
    keep_special_tokens=True, extra_stop_tokens=(END_OF_UTTERANCE, DOCTAGS_END), kept_stop_tokens=(DOCTAGS_END,),
    transcription=DOCTAGS_TRANSCRIPTION, vision_parts=IDEFICS_VISION)
SMOLVLM = Family(
    name="smolvlm", summary="SmolVLM / Idefics3: a general small VLM, text out",
    model_types=frozenset({"idefics3", "smolvlm"}), resolution=Tiles(), lora=IDEFICS_LORA,
    extra_stop_tokens=(END_OF_UTTERANCE,), vision_parts=IDEFICS_VISION)
IDEFICS2 = Family(
    name="idefics2", summary="Idefics2: a general VLM, text out", model_types=frozenset({"idefics2"}),
    resolution=Crops(), lora=IDEFICS_LORA, extra_stop_tokens=(END_OF_UTTERANCE,), vision_parts=IDEFICS_VISION)

FAMILIES = (DOCTAGS_FAMILY, SMOLVLM, IDEFICS2)
