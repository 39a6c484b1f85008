"""Granite-Docling v2 (`granite_docling`, ibm-granite/granite-for-docling-500m): SigLIP-style 512 px tiles and a
thumbnail, a coarse/fine connector, a Granite language model. It writes DocLang, Docling's XML successor of
DocTags: `<heading>`, `<text>`, `<table>` (OTSL cells) ... each with four `<location value="N"/>` on a 0..512
grid; docling-core converts it (jobs/doctags.py), as it converts DocTags.

The card's recipe (transformers' docstring): the chat template with the image and the text `<doclang>`, the
special tokens kept in the decode (they are the markup), 4096 new tokens. Pages are read whole. Tiles: at most 32
of 512 px plus the thumbnail (resolution.TileGrid). LoRA: the Idefics3 layout's names (`text_model`, the vision
tower's `encoder`); the connector, under the vision model, trains fully.
"""

from __future__ import annotations

from vlmcli.model.families import DOCLANG, Family
from vlmcli.model.families.idefics import IDEFICS_LORA
from vlmcli.model.families.resolution import TileGrid
from vlmcli.specs import DOCTAGS_REPETITION_MIN_TOKENS, PageTranscription

DOCLANG_PROMPT = "<doclang>"
DOCLANG_END = "</doclang>"
MAX_NEW_TOKENS = 4096  # the docstring's max_new_tokens for a page

GRANITE_DOCLING = Family(
    name="granite_docling", summary="Granite-Docling v2: DocLang (structure, tables and boxes) for a page",
    model_types=frozenset({"granite_docling"}), resolution=TileGrid(), lora=IDEFICS_LORA, output=DOCLANG,
    ocr_prompt=DOCLANG_PROMPT, handwriting_prompt=DOCLANG_PROMPT, keep_special_tokens=True,
    extra_stop_tokens=(DOCLANG_END,), kept_stop_tokens=(DOCLANG_END,),
    transcription=PageTranscription(MAX_NEW_TOKENS, DOCTAGS_REPETITION_MIN_TOKENS, whole_pages=True))

FAMILIES = (GRANITE_DOCLING,)
