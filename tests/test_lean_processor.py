"""The lean Idefics3 image processor (vlmcli/imageproc.py) gives transformers' pixels, bit for bit."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers import AutoProcessor
from transformers.models.idefics3.image_processing_pil_idefics3 import (
    Idefics3ImageProcessorPil,
)

from vlmcli.model.levers.lean_processor import LeanIdefics3ImageProcessor, leaner_images


def _image(width_px: int, height_px: int, mode: str, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height_px, width_px, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def _both(**settings_):
    theirs = Idefics3ImageProcessorPil(size={"longest_edge": 256}, max_image_size={"longest_edge": 64},
                                       image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], **settings_)
    return theirs, LeanIdefics3ImageProcessor(**theirs.to_dict())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.lists(st.tuples(st.integers(8, 300), st.integers(8, 300)), min_size=1, max_size=2),
                      min_size=1, max_size=3),
       mode=st.sampled_from(["RGB", "L", "RGBA", "P"]), split=st.booleans(), seed=st.integers(0, 9))
def test_same_pixels_masks_rows_and_cols(sizes, mode, split, seed):
    """Batches of samples with 1-2 images of any shape: padding images, padding pixels, split or not."""
    theirs, lean = _both(do_image_splitting=split)
    images = [[_image(w, h, mode, seed + i) for i, (w, h) in enumerate(sample)] for sample in sizes]
    expected = theirs(images=images, return_tensors="pt", return_row_col_info=True)
    got = lean(images=images, return_tensors="pt", return_row_col_info=True)
    assert set(got) == set(expected)
    assert got["pixel_values"].dtype == expected["pixel_values"].dtype
    assert torch.equal(got["pixel_values"], expected["pixel_values"])
    assert got["pixel_attention_mask"].dtype == torch.bool  # transformers' is int64: 8x the memory
    assert torch.equal(got["pixel_attention_mask"], expected["pixel_attention_mask"].bool())
    assert got["rows"] == expected["rows"] and got["cols"] == expected["cols"]


def test_paths_it_does_not_reproduce_go_to_transformers():
    images = [[_image(100, 70, "RGB", 0)]]
    for flags in ({"do_pad": False}, {"do_normalize": False}, {"do_rescale": False}):
        theirs, lean = _both(**flags)
        assert torch.equal(torch.as_tensor(np.asarray(lean(images=images, return_tensors="np")["pixel_values"])),
                           torch.as_tensor(np.asarray(theirs(images=images, return_tensors="np")["pixel_values"])))


def test_swapped_in_at_load_and_saved_as_transformers_class(tiny_idefics3, tmp_path):
    processor = leaner_images(AutoProcessor.from_pretrained(tiny_idefics3))
    assert type(processor.image_processor) is LeanIdefics3ImageProcessor
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded.image_processor) is Idefics3ImageProcessorPil
    assert reloaded.image_processor.to_dict() == processor.image_processor.to_dict()


def test_other_image_processors_are_left_alone(tiny_idefics2):
    processor = AutoProcessor.from_pretrained(tiny_idefics2)
    before = processor.image_processor
    assert leaner_images(processor).image_processor is before
