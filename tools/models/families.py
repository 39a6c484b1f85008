"""Tiny random checkpoints of the OCR families (a few hundred thousand parameters, seconds on a CPU, seeded).

`build_family_checkpoint(out_dir, family)` saves config, weights, generation_config, processor, tokenizer and chat
template with the ordinary `save_pretrained`, so `AutoModelForImageTextToText.from_pretrained(out_dir)` loads the
model and `vlmcli.model.image_only.load_processor(out_dir)` (AutoProcessor where torchvision imports) the processor.
Token strings, prompt layout, processor class and generation_config follow the real checkpoint of each family; the
widths are tiny. Families whose processor declares a video processor (qwen2_5_vl, qwen3_vl, glm_ocr) are saved
image-only (image_only.py says why and how they load).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, GenerationConfig

from tools.models import templates
from tools.models.family_tokenizers import tiny_tokenizer
from vlmcli.model.image_only import image_only_class

FAMILIES = ("lighton_ocr", "paddleocr_vl", "glm_ocr", "qwen2_5_vl", "deepseek_ocr2", "granite_docling", "qwen3_vl")
# 64 wide, 4 heads / 2 KV heads: the width bitsandbytes' CPU 4-bit kernel accepts (build.py's TEST_HIDDEN).
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16)
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def build_family_checkpoint(out_dir: Path, family: str, *, seed: int = 0) -> Path:
    """A deterministic tiny checkpoint of `family` (one of FAMILIES) in `out_dir`."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    config, processor, generation = PARTS[family]()
    return save_family_checkpoint(out_dir, config, processor, generation, seed=seed)


def save_family_checkpoint(out_dir: Path, config, processor, generation: GenerationConfig, *, seed: int = 0,
                           dtype: torch.dtype = torch.float32) -> Path:
    """Random weights for `config` (seeded), saved with `generation` and the processor."""
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    model.generation_config = generation
    model.to(dtype)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def ids(tokenizer, *tokens: str) -> list[int]:
    """The ids of tokens that must exist as single tokens."""
    found = [tokenizer.convert_tokens_to_ids(t) for t in tokens]
    if None in found or tokenizer.unk_token_id in found and tokenizer.unk_token not in tokens:
        raise ValueError(f"tokenizer lacks one of {tokens}")
    return found


def lighton_ocr_parts():
    """LightOnOCR-2-1B: Pixtral vision tower (patch 14, 2x2 merge) + Qwen3 text model, LightOnOcrProcessor with a
    Qwen3 tokenizer carrying image/image_break/image_end tokens, its ChatML template, and generation_config's
    eos [<|im_end|>, <|endoftext|>] with the card's sampling (temperature 0.2, top_p 0.9). The bbox variants differ
    only in what they write (`![image](image_N.png)x1,y1,x2,y2` in plain text): same tokens, same checkpoint."""
    from transformers import LightOnOcrConfig, LightOnOcrProcessor, PixtralImageProcessorPil

    tok = tiny_tokenizer("lighton_ocr")
    end, pad = ids(tok, "<|im_end|>", "<|endoftext|>")
    config = LightOnOcrConfig(
        vision_config=dict(model_type="pixtral", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, head_dim=16, image_size=112, patch_size=14),
        text_config=dict(model_type="qwen3", vocab_size=len(tok), max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6}, tie_word_embeddings=True,
                         **TEXT),
        image_token_id=tok.image_token_id, spatial_merge_size=2, eos_token_id=end, pad_token_id=pad)
    image_processor = PixtralImageProcessorPil(size={"longest_edge": 112}, patch_size={"height": 14, "width": 14},
                                               image_mean=CLIP_MEAN, image_std=CLIP_STD)
    processor = LightOnOcrProcessor(image_processor, tok, patch_size=14, spatial_merge_size=2,
                                    chat_template=templates.LIGHTON_OCR)
    generation = GenerationConfig(bos_token_id=pad, eos_token_id=[end, pad], pad_token_id=pad, do_sample=True,
                                  temperature=0.2, top_p=0.9, top_k=0)
    return config, processor, generation


def paddleocr_vl_parts():
    """PaddleOCR-VL: NaViT SigLIP tower + ERNIE-4.5 text model (3 mRoPE axes), PaddleOCRVLProcessor with the
    checkpoint's image processor settings scaled down (temporal patch 1, merge 2, mean/std 0.5), its template, and
    generation_config's eos 2 / pad 0 / use_cache false."""
    from transformers import PaddleOCRVLConfig, PaddleOCRVLImageProcessorPil, PaddleOCRVLProcessor

    tok = tiny_tokenizer("paddleocr_vl")
    start, end, video = ids(tok, "<|IMAGE_START|>", "<|IMAGE_END|>", "<|video_pad|>")
    config = PaddleOCRVLConfig(
        text_config=dict(vocab_size=len(tok), max_position_embeddings=4096, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2, tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 500000.0, "mrope_section": [2, 3, 3]},
                         **TEXT),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=56, patch_size=14, spatial_merge_size=2),
        image_token_id=tok.image_token_id, video_token_id=video, vision_start_token_id=start,
        vision_end_token_id=end, tie_word_embeddings=False)
    image_processor = PaddleOCRVLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16, patch_size=14,
                                                   temporal_patch_size=1, merge_size=2, image_mean=[0.5] * 3,
                                                   image_std=[0.5] * 3)
    processor = PaddleOCRVLProcessor(image_processor, tok, chat_template=templates.PADDLEOCR_VL)
    generation = GenerationConfig(eos_token_id=2, pad_token_id=0, use_cache=False)
    return config, processor, generation


def glm_ocr_parts():
    """GLM-OCR: CogViT tower (patch 14, temporal 2, merge 2) + GLM text model (fused gate_up_proj), Glm46VProcessor
    image-only with Glm46VImageProcessor's size bounds (they bound two temporal frames: one page gets half), the
    [gMASK]<sop> template, and generation_config's greedy decoding with eos [<|endoftext|>, <|user|>]."""
    from transformers import Glm46VImageProcessorPil, Glm46VProcessor, GlmOcrConfig

    tok = tiny_tokenizer("glm_ocr")
    eot, user, image, video, boi, eoi, bov, eov = ids(
        tok, "<|endoftext|>", "<|user|>", "<|image|>", "<|video|>", "<|begin_of_image|>", "<|end_of_image|>",
        "<|begin_of_video|>", "<|end_of_video|>")
    config = GlmOcrConfig(
        text_config=dict(vocab_size=len(tok), max_position_embeddings=4096, eos_token_id=[eot, user],
                         pad_token_id=eot, tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3],
                                          "partial_rotary_factor": 1.0, "rope_theta": 10000}, **TEXT),
        vision_config=dict(depth=1, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=64,
                           image_size=56, patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=image, video_token_id=video, image_start_token_id=boi, image_end_token_id=eoi,
        video_start_token_id=bov, video_end_token_id=eov, tie_word_embeddings=False)
    image_processor = Glm46VImageProcessorPil(size={"shortest_edge": 2 * 28 * 28 * 4, "longest_edge": 2 * 28 * 28 * 16},
                                              patch_size=14, temporal_patch_size=2, merge_size=2,
                                              image_mean=CLIP_MEAN, image_std=CLIP_STD)
    processor = image_only_class(Glm46VProcessor)(image_processor, tok, chat_template=templates.GLM_OCR)
    generation = GenerationConfig(do_sample=False, eos_token_id=[eot, user], pad_token_id=eot)
    return config, processor, generation


def qwen2_5_vl_parts():
    """Qwen2.5-VL (olmOCR-2-7B, Nanonets-OCR2-3B): windowed ViT + Qwen2 text model with mRoPE, Qwen2_5_VLProcessor
    image-only, Qwen2.5-VL-Instruct's template (default system turn) and generation_config (eos [<|im_end|>,
    <|endoftext|>], its near-greedy sampling)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor, Qwen2VLImageProcessorPil

    tok = tiny_tokenizer("qwen2")
    end, eot, image, video, start, stop = ids(tok, "<|im_end|>", "<|endoftext|>", "<|image_pad|>", "<|video_pad|>",
                                              "<|vision_start|>", "<|vision_end|>")
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tok), max_position_embeddings=4096, bos_token_id=eot, eos_token_id=end,
                         tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
                         **TEXT),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           fullatt_block_indexes=[1], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           window_size=56),
        image_token_id=image, video_token_id=video, vision_start_token_id=start, vision_end_token_id=stop,
        tie_word_embeddings=False)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16, patch_size=14,
                                               temporal_patch_size=2, merge_size=2, image_mean=CLIP_MEAN,
                                               image_std=CLIP_STD)
    processor = image_only_class(Qwen2_5_VLProcessor)(image_processor, tok, chat_template=templates.QWEN2_5_VL)
    generation = GenerationConfig(bos_token_id=eot, eos_token_id=[end, eot], pad_token_id=eot, do_sample=True,
                                  repetition_penalty=1.05, temperature=0.1, top_p=0.001, top_k=1)
    return config, processor, generation


def qwen3_vl_parts():
    """Qwen3-VL-2B: ViT with patch 16 (32 px per token after the 2x2 merge; the image processor must say
    patch_size=16 too), deepstack, Qwen3 text model with interleaved mRoPE, Qwen3VLProcessor image-only, the
    Instruct template (no default system turn) and generation_config (eos [<|im_end|>, <|endoftext|>])."""
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLConfig, Qwen3VLProcessor

    tok = tiny_tokenizer("qwen3")
    end, eot, image, video, start, stop = ids(tok, "<|im_end|>", "<|endoftext|>", "<|image_pad|>", "<|video_pad|>",
                                              "<|vision_start|>", "<|vision_end|>")
    config = Qwen3VLConfig(
        text_config=dict(vocab_size=len(tok), max_position_embeddings=4096, bos_token_id=eot, eos_token_id=end,
                         rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [2, 3, 3],
                                          "mrope_interleaved": True}, **TEXT),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64,
                           deepstack_visual_indexes=[1]),
        image_token_id=image, video_token_id=video, vision_start_token_id=start, vision_end_token_id=stop,
        tie_word_embeddings=True)
    image_processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 16},
                                               patch_size=16, temporal_patch_size=2, merge_size=2,
                                               image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = image_only_class(Qwen3VLProcessor)(image_processor, tok, chat_template=templates.QWEN3_VL)
    generation = GenerationConfig(bos_token_id=eot, eos_token_id=[end, eot], pad_token_id=eot, do_sample=True,
                                  temperature=0.7, top_p=0.8, top_k=20)
    return config, processor, generation


def deepseek_ocr2_parts():
    """DeepSeek-OCR-2 (deepseek-community port): SAM + Qwen2-style encoder + DeepSeek-V2 MoE text model, no chat
    template. The global view and tiles keep their real sizes (1024 and 768 px): the projector's learned queries are
    hard-coded for 256 global and 144 tile tokens. SAM stays 1 layer; every Linear layer is 64 wide or more (the
    shared expert too), the width bitsandbytes' CPU 4-bit kernel takes (build.py's TEST_HIDDEN). Trap (5.25): with
    `crop_to_patches=False` the image processor resizes the global view to 768 px but the processor counts 1024 px
    of tokens (`Image features and image tokens do not match, tokens: 257, features: 145`); pass
    `size={"height": 768, "width": 768}` with it (145 tokens)."""
    from transformers import DeepseekOcr2Config, DeepseekOcr2ImageProcessorPil, DeepseekOcr2Processor

    tok = tiny_tokenizer("deepseek_ocr2")
    config = DeepseekOcr2Config(
        vision_config=dict(
            sam_config=dict(hidden_size=64, output_channels=16, num_hidden_layers=1, num_attention_heads=2,
                            global_attn_indexes=[], downsample_channels=[32, 64]),
            encoder_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                                num_key_value_heads=2)),
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, n_routed_experts=4, n_shared_experts=1,
                         num_experts_per_tok=2, moe_intermediate_size=64, mlp_layer_types=["dense", "sparse"],
                         max_position_embeddings=8192, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"))
    processor = DeepseekOcr2Processor(DeepseekOcr2ImageProcessorPil(), tok)
    generation = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                  pad_token_id=tok.pad_token_id)
    return config, processor, generation


def granite_docling_parts():
    """Granite-Docling v2 (ibm-granite/granite-for-docling-500m layout): SigLIP-style tiles + Granite text model
    (embedding/residual/attention multipliers, logits scaling), the fine connector route, GraniteDoclingProcessor
    with Idefics3's tile tokens, the Granite role template, and eos = bos = <|end_of_text|>. Linear layers 64 wide
    (bitsandbytes' CPU 4-bit kernel)."""
    from transformers import GraniteDoclingConfig, GraniteDoclingImageProcessorPil, GraniteDoclingProcessor

    tok = tiny_tokenizer("granite_docling")
    config = GraniteDoclingConfig(
        text_config=dict(vocab_size=len(tok), max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **TEXT),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                           image_size=64, patch_size=8, out_hidden_size=64, scale_factor=2, use_fine_route=True),
        image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id)
    image_processor = GraniteDoclingImageProcessorPil(size={"height": 64, "width": 64}, max_patches=4,
                                                      image_mean=CLIP_MEAN, image_std=CLIP_STD)
    processor = GraniteDoclingProcessor(image_processor, tok, image_seq_len=(64 // 8) ** 2 // 2**2,
                                        chat_template=templates.GRANITE_DOCLING)
    generation = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                  pad_token_id=tok.pad_token_id)
    return config, processor, generation


PARTS = {"lighton_ocr": lighton_ocr_parts, "paddleocr_vl": paddleocr_vl_parts, "glm_ocr": glm_ocr_parts,
         "qwen2_5_vl": qwen2_5_vl_parts, "qwen3_vl": qwen3_vl_parts, "deepseek_ocr2": deepseek_ocr2_parts,
         "granite_docling": granite_docling_parts}
